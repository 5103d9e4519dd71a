//! Incremental merges: an incremental model with a `unique_key` replaces
//! the rows of the keys new data touches, instead of appending rows. The
//! replaced rows are recomputed from *all* the model's input, so a merge
//! gives the rows a full refresh gives, in one of two ways:
//!
//! - **By key** (`unique_key` alone, [`merge_changes`]): what changed
//!   below the model since its last run — new raw files, rows inserted
//!   into or deleted from the tables it reads (see [`super::changed`]) —
//!   names the keys it touches: the model is run with each changed input
//!   read from its changes alone. Then the model is run over everything,
//!   filtered to those keys. The filter sits on the model's output, so its
//!   result is exact whatever the query does, and DataFusion pushes it
//!   down (through aggregates and windows partitioned by the key, joins
//!   and projections) so that only the touched keys' input is aggregated.
//!   Both runs join small sets of rows with whole tables; a join that
//!   probes the identifier occurrences reads only the rows their index
//!   picks ([`super::index_join`]).
//!   Every current row of a touched key is replaced, so a key that lost
//!   all its rows (a profile merged into another) is removed. Exact when
//!   the rows a change reaches carry the keys whose rows change, as for
//!   any model grouped by its key; not for a value ranked against every
//!   row (a global `ntile`), which belongs in a `table` model. A model
//!   that reads one changed table row by row (a filter of it) is not
//!   recomputed at all: the rows its inserted rows give are added, the
//!   keys its deleted rows gave are removed.
//! - **By time** (`event_time`, with `batch_size` and `lookback`): the
//!   earliest event time among the new rows, truncated to its batch
//!   (`day` by default), starts a window; the raw sources are read from
//!   that time on (Parquet statistics skip older row groups), and every
//!   key the window yields is replaced. The key must hold the batch (for
//!   example `unique_key=['anonymous_id', 'day']`). Data later than
//!   `lookback` behind the newest new event does not take the window:
//!   the model is rebuilt whole instead, and the run says why.
//!
//! The replaced rows are deleted from the current version by position
//! (merge-on-read, see `storage::deletes`) and the recomputed rows are
//! appended. Two recomputed rows with the same key are an error, as in
//! PostgreSQL's `MERGE`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;

use super::changed::{Changed, Side};
use super::column_index::{self, key_hashes};
use super::index_join::{IndexedTables, index_joins};
use super::index_scan::planning_index_filters;
use super::key_set;
use super::template::{BatchSize, ModelConfig};
use crate::error::{Error, Result};
use crate::identity::hash_filter::HashFilter;
use crate::storage::Storage;
use crate::storage::deletes::{self, DeletedRows, NewDeletes};
use crate::storage::live_rows::LiveRows;
use crate::storage::publish::TablePointer;

/// What a merge decided.
pub enum Merge {
    /// Replace the current version's rows of these rows' keys by them.
    Rows {
        rows: Vec<RecordBatch>,
        deletes: NewDeletes,
    },
    /// The merge cannot stand for a full refresh: rebuild, for this reason.
    Rebuild(String),
}

/// The raw sources an incremental run reads, each as the provider of the
/// files that arrived since the last run.
pub type NewSources = Vec<(String, Arc<dyn TableProvider>)>;

/// Computes a merge by time of `current` with new data (the model's
/// `event_time` is set). `full` is the model over all its input.
pub async fn merge_by_time(
    ctx: &SessionContext,
    storage: &Storage,
    config: &ModelConfig,
    event_time: &str,
    full: LogicalPlan,
    new_sources: &NewSources,
    current: &TablePointer,
) -> Result<Merge> {
    let key = &config.unique_key;
    check_key(key, &full)?;
    let recompute = match time_window(ctx, config, event_time, new_sources).await? {
        Window::Empty => return empty(),
        Window::Late(reason) => return Ok(Merge::Rebuild(reason)),
        Window::From(start) => from_time(full, new_sources, event_time, start)?,
    };
    let rows = ctx.execute_logical_plan(recompute).await?.collect().await?;
    let deletes = replaced_rows(storage, None, current, key, &rows, &[]).await?;
    Ok(Merge::Rows { rows, deletes })
}

/// Fails unless every `unique_key` column is a column of the model.
fn check_key(key: &[String], plan: &LogicalPlan) -> Result<()> {
    for k in key {
        if plan.schema().index_of_column_by_name(None, k).is_none() {
            return Err(plan_error(format!(
                "unique_key column \"{k}\" is not a column of the model"
            )));
        }
    }
    Ok(())
}

/// Computes a merge from what changed below the model (see
/// [`super::changed`]): the keys each change reaches are recomputed from
/// everything, and every current row of those keys replaced — a key that
/// no longer has a row (a profile merged into another) loses its row. A
/// model that reads one changed input row by row skips the recomputation:
/// its new rows are those the inserted rows give, and the keys the
/// deleted rows gave lose theirs.
pub async fn merge_changes(
    ctx: &SessionContext,
    storage: &Storage,
    indexed: &IndexedTables,
    config: &ModelConfig,
    changed: &Changed,
    current: &TablePointer,
) -> Result<Merge> {
    let key = &config.unique_key;
    check_key(key, &changed.plan)?;
    let keys_of = |plan: LogicalPlan| -> Result<LogicalPlan> {
        Ok(LogicalPlanBuilder::from(plan)
            .project(key.iter().map(|k| col(Column::from_name(k))))?
            .distinct()?
            .build()?)
    };
    let collect = |plan: LogicalPlan| async move {
        let clock = std::time::Instant::now();
        let frame = ctx.execute_logical_plan(plan).await?;
        let task = Arc::new(frame.task_ctx());
        let (state, plan) = frame.into_parts();
        let state = planning_index_filters(state, indexed);
        let physical = index_joins(state.create_physical_plan(&plan).await?, indexed)?;
        let planned = clock.elapsed().as_secs_f64();
        let batches = datafusion::physical_plan::collect(Arc::clone(&physical), task).await?;
        tracing::debug!(
            planned,
            ran = clock.elapsed().as_secs_f64() - planned,
            "merge: query planned and run"
        );
        tracing::trace!(
            plan = %datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                physical.as_ref()
            )
            .indent(false),
            "merge: physical plan, as run"
        );
        Ok::<_, Error>(batches)
    };
    if let Some(input) = changed.row_wise() {
        let rows = collect(changed.over(input, Side::Inserted)?).await?;
        let gone = collect(keys_of(changed.over(input, Side::Deleted)?)?).await?;
        let deletes = replaced_rows(storage, Some(indexed), current, key, &rows, &gone).await?;
        return Ok(Merge::Rows { rows, deletes });
    }
    let clock = std::time::Instant::now();
    let mut touched = Vec::new();
    for input in &changed.inputs {
        let keys = collect(changed.keys_over(input, key)?).await?;
        tracing::debug!(
            input = input.name(),
            keys = keys.iter().map(RecordBatch::num_rows).sum::<usize>(),
            seconds = clock.elapsed().as_secs_f64(),
            "merge: keys the changes reach"
        );
        touched.extend(keys);
    }
    let Some(filter) = keys_filter(key, &touched)? else {
        return empty();
    };
    let recompute = LogicalPlanBuilder::from(changed.plan.clone())
        .filter(filter)?
        .build()?;
    let rows = collect(recompute).await?;
    tracing::debug!(
        rows = rows.iter().map(RecordBatch::num_rows).sum::<usize>(),
        seconds = clock.elapsed().as_secs_f64(),
        "merge: touched keys recomputed"
    );
    let deletes = replaced_rows(storage, Some(indexed), current, key, &rows, &touched).await?;
    tracing::debug!(
        seconds = clock.elapsed().as_secs_f64(),
        "merge: replaced rows found"
    );
    Ok(Merge::Rows { rows, deletes })
}

fn plan_error(message: String) -> Error {
    Error::DataFusion(datafusion::error::DataFusionError::Plan(message))
}

fn empty() -> Result<Merge> {
    Ok(Merge::Rows {
        rows: Vec::new(),
        deletes: NewDeletes::new(),
    })
}

/// A filter on the model's output that keeps the rows of `keys` (a
/// superset for a key of several columns: each column within its values;
/// every row it keeps is exact, so replacing more keys is harmless). NULL
/// keys are kept as keys. None when there are no keys.
fn keys_filter(key: &[String], keys: &[RecordBatch]) -> Result<Option<Expr>> {
    if keys.iter().all(|b| b.num_rows() == 0) {
        return Ok(None);
    }
    let mut filter: Option<Expr> = None;
    for (i, name) in key.iter().enumerate() {
        let mut values = HashSet::new();
        let mut nulls = false;
        for batch in keys {
            let column = batch.column(i);
            for row in 0..column.len() {
                if column.is_null(row) {
                    nulls = true;
                } else {
                    values.insert(ScalarValue::try_from_array(column, row)?);
                }
            }
        }
        let values = if values.is_empty() {
            new_empty_array(keys[0].column(i).data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        };
        let this = key_set::keys_filter(col(Column::from_name(name)), values, nulls)?;
        filter = Some(match filter {
            Some(f) => f.and(this),
            None => this,
        });
    }
    Ok(filter)
}

enum Window {
    /// The new files hold no rows.
    Empty,
    /// Recompute from this time (µs since the epoch, UTC).
    From(i64),
    /// Later than the lookback: rebuild, for this reason.
    Late(String),
}

/// Where the new rows' window starts: their earliest event time,
/// truncated to its batch.
async fn time_window(
    ctx: &SessionContext,
    config: &ModelConfig,
    event_time: &str,
    new_sources: &NewSources,
) -> Result<Window> {
    let (mut earliest, mut latest): (Option<i64>, Option<i64>) = (None, None);
    let mut found = false;
    for (name, provider) in new_sources {
        let schema = provider.schema();
        let Ok(field) = schema.field_with_name(event_time) else {
            continue;
        };
        let DataType::Timestamp(unit, _) = field.data_type() else {
            return Err(plan_error(format!(
                "event_time \"{event_time}\" of {name} is {}, not a timestamp",
                field.data_type()
            )));
        };
        found = true;
        let column = col(Column::from_name(event_time));
        let bounds = ctx
            .read_table(Arc::clone(provider))?
            .aggregate(vec![], vec![min(column.clone()), max(column)])?
            .collect()
            .await?;
        let Some(batch) = bounds.first() else {
            continue;
        };
        let at = |i: usize| -> Result<Option<i64>> {
            let value = ScalarValue::try_from_array(batch.column(i), 0)?;
            Ok(timestamp_micros(&value, *unit))
        };
        if let Some(t) = at(0)? {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        if let Some(t) = at(1)? {
            latest = Some(latest.map_or(t, |l| l.max(t)));
        }
    }
    if !found {
        return Err(plan_error(format!(
            "event_time \"{event_time}\" is not a column of any raw source the model reads"
        )));
    }
    let (Some(earliest), Some(latest)) = (earliest, latest) else {
        return Ok(Window::Empty);
    };
    if let Some(lookback) = &config.lookback
        && latest - earliest > lookback.micros
    {
        return Ok(Window::Late(format!(
            "late data: events from {} arrived with events up to {}, more than the lookback of {}",
            show_time(earliest),
            show_time(latest),
            lookback.text
        )));
    }
    Ok(Window::From(truncate(earliest, config.batch_size)))
}

fn timestamp_micros(value: &ScalarValue, unit: TimeUnit) -> Option<i64> {
    let raw = match value {
        ScalarValue::TimestampSecond(v, _)
        | ScalarValue::TimestampMillisecond(v, _)
        | ScalarValue::TimestampMicrosecond(v, _)
        | ScalarValue::TimestampNanosecond(v, _) => (*v)?,
        _ => return None,
    };
    Some(match unit {
        TimeUnit::Second => raw * 1_000_000,
        TimeUnit::Millisecond => raw * 1_000,
        TimeUnit::Microsecond => raw,
        TimeUnit::Nanosecond => raw.div_euclid(1_000),
    })
}

fn show_time(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| micros.to_string())
}

/// The start of the batch (UTC) a time falls in.
fn truncate(micros: i64, size: BatchSize) -> i64 {
    const HOUR: i64 = 3_600_000_000;
    match size {
        BatchSize::Hour => micros - micros.rem_euclid(HOUR),
        BatchSize::Day => micros - micros.rem_euclid(24 * HOUR),
        BatchSize::Month | BatchSize::Year => {
            let Some(t) = DateTime::from_timestamp_micros(micros) else {
                return micros;
            };
            let month = if size == BatchSize::Month {
                t.month()
            } else {
                1
            };
            NaiveDate::from_ymd_opt(t.year(), month, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp_micros())
                .unwrap_or(micros - i64::from(t.num_seconds_from_midnight()) * 1_000_000)
        }
    }
}

/// The model over its sources' rows from `start` on: each scan of a new
/// source that has the event time column is filtered.
fn from_time(
    full: LogicalPlan,
    new_sources: &NewSources,
    event_time: &str,
    start: i64,
) -> Result<LogicalPlan> {
    let plan = full.transform_up(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let is_new_source = new_sources
            .iter()
            .any(|(name, _)| scan.table_name.table() == name);
        let Some((qualifier, field)) = scan
            .projected_schema
            .qualified_field_with_unqualified_name(event_time)
            .ok()
            .filter(|_| is_new_source)
        else {
            return Ok(Transformed::no(node));
        };
        let DataType::Timestamp(_, tz) = field.data_type() else {
            return Ok(Transformed::no(node));
        };
        let column = Expr::Column(Column::new(qualifier.cloned(), event_time));
        let since = lit(ScalarValue::TimestampMicrosecond(Some(start), tz.clone()));
        let filtered = LogicalPlanBuilder::from(node.clone())
            .filter(column.gt_eq(since))?
            .build()?;
        Ok(Transformed::yes(filtered))
    })?;
    Ok(plan.data)
}

/// The positions of the current version's live rows whose key is among
/// `rows`' keys or `also` (batches of the key's columns), per data file;
/// an error when `rows` repeat a key.
async fn replaced_rows(
    storage: &Storage,
    indexed: Option<&IndexedTables>,
    current: &TablePointer,
    key: &[String],
    rows: &[RecordBatch],
    also: &[RecordBatch],
) -> Result<NewDeletes> {
    if rows.iter().chain(also).all(|b| b.num_rows() == 0) {
        return Ok(NewDeletes::new());
    }
    let schema = current.arrow_schema()?;
    let indices: Vec<usize> = key
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<std::result::Result<_, _>>()?;
    let converter = RowConverter::new(
        indices
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    // Keys as their rows' bytes, so the current table's rows are looked
    // up without copying each.
    let mut keys: hashbrown::HashSet<Vec<u8>> = hashbrown::HashSet::new();
    for batch in also {
        let columns = key_columns(batch, &indices, &schema, true)?;
        for row in converter.convert_columns(&columns)?.iter() {
            keys.insert(row.as_ref().to_vec());
        }
    }
    let mut recomputed: hashbrown::HashSet<Vec<u8>> = hashbrown::HashSet::new();
    for batch in rows {
        let columns = key_columns(batch, &indices, &schema, false)?;
        let converted = converter.convert_columns(&columns)?;
        for (r, row) in converted.iter().enumerate() {
            keys.insert(row.as_ref().to_vec());
            if !recomputed.insert(row.as_ref().to_vec()) {
                let value: Vec<String> = columns
                    .iter()
                    .map(|c| array_value_to_string(c, r).unwrap_or_default())
                    .collect();
                return Err(plan_error(format!(
                    "unique_key ({}) is not unique in the model's output: ({}) appears more than once",
                    key.join(", "),
                    value.join(", ")
                )));
            }
        }
    }
    let live = match indexed.and_then(|i| indexed_key(i, current, key)) {
        Some(columns) => {
            candidates(storage, current, &indices, &columns, rows, also, &schema).await?
        }
        None => LiveRows::read_columns(storage, current, &indices).await?,
    };
    let mut positions: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for batch in &live.batches {
        let converted = converter.convert_columns(batch.batch.columns())?;
        for (r, row) in converted.iter().enumerate() {
            if keys.contains(row.as_ref()) {
                positions
                    .entry(batch.file)
                    .or_default()
                    .push(batch.positions[r]);
            }
        }
    }
    Ok(positions
        .into_iter()
        .map(|(file, rows)| {
            (
                live.files[file].clone(),
                (live.file_rows[file], DeletedRows::new(rows)),
            )
        })
        .collect())
}

/// The columns of an index the table declares on exactly the key's
/// columns (in the index's order), if it has one.
fn indexed_key(
    indexed: &IndexedTables,
    current: &TablePointer,
    key: &[String],
) -> Option<Vec<String>> {
    let table = indexed
        .column_indexed()
        .iter()
        .find(|t| t.table == current.name && t.files == current.files)?;
    table
        .indexes
        .iter()
        .find(|columns| columns.len() == key.len() && key.iter().all(|k| columns.contains(k)))
        .cloned()
}

/// The live rows whose key hash (in the index on `columns`) is that of a
/// key of `rows` or `also`, of the key columns only: the candidates the
/// caller compares exactly.
async fn candidates(
    storage: &Storage,
    current: &TablePointer,
    indices: &[usize],
    columns: &[String],
    rows: &[RecordBatch],
    also: &[RecordBatch],
    schema: &datafusion::arrow::datatypes::Schema,
) -> Result<LiveRows> {
    // Key columns in the index's order: positions in `indices` (the key's).
    let order: Vec<usize> = columns
        .iter()
        .filter_map(|c| indices.iter().position(|&i| schema.field(i).name() == c))
        .collect();
    let mut wanted = HashFilter::default();
    for (batches, keys) in [(also, true), (rows, false)] {
        for batch in batches {
            let key = key_columns(batch, indices, schema, keys)?;
            let ordered: Vec<ArrayRef> = order.iter().map(|&n| Arc::clone(&key[n])).collect();
            // A key with a null is looked up as the index stores any
            // row with one: as 0 (the rows compared exactly after).
            for h in key_hashes(&ordered)? {
                wanted.insert(h.unwrap_or(0));
            }
        }
    }
    let index = column_index::matching(storage, &current.name, columns, &current.files, |h| {
        wanted.contains(h)
    })
    .await?;
    let deleted = deletes::load_all(storage, &current.deletes).await?;
    let mut positions: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (f, (path, (_, matched))) in current.files.iter().zip(index).enumerate() {
        let gone = deleted.get(path).map(|(_, d)| d.positions()).unwrap_or(&[]);
        let picked: Vec<u32> = matched
            .into_iter()
            .filter(|r| gone.binary_search(r).is_err())
            .collect();
        if !picked.is_empty() {
            positions.insert(f, picked);
        }
    }
    tracing::debug!(
        table = %current.name,
        keys = wanted.len(),
        picked = positions.values().map(Vec::len).sum::<usize>(),
        rows = current.rows,
        "merge: replaced rows picked through the key's index"
    );
    LiveRows::read_positions_of(storage, current, &positions, indices).await
}

/// A batch's key columns (all of `keys`, or at `indices` of a model's
/// row), cast to the table's types.
fn key_columns(
    batch: &RecordBatch,
    indices: &[usize],
    schema: &datafusion::arrow::datatypes::Schema,
    keys: bool,
) -> Result<Vec<ArrayRef>> {
    indices
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let column = batch.column(if keys { n } else { i });
            Ok(datafusion::arrow::compute::cast(
                column,
                schema.field(i).data_type(),
            )?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_start_at_their_boundary() {
        // 2026-03-15 13:45:10 UTC
        let t = 1_773_582_310_000_000;
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        assert_eq!(show_time(t), "2026-03-15 13:45:10");
        assert_eq!(truncate(t, BatchSize::Hour), at("2026-03-15 13:00:00"));
        assert_eq!(truncate(t, BatchSize::Day), at("2026-03-15 00:00:00"));
        assert_eq!(truncate(t, BatchSize::Month), at("2026-03-01 00:00:00"));
        assert_eq!(truncate(t, BatchSize::Year), at("2026-01-01 00:00:00"));
    }
}
