//! Scans through a column index (see [`super::column_index`]): a scan of
//! a table with declared indexes that looks up values of indexed columns
//! reads only the rows whose hash one of those values has, through a
//! Parquet row selection on each file (together with the selection of its
//! deleted rows, if any). The rows are read once per build for every scan
//! of the table that picks them ([`super::picked_reads`]), cast to each
//! scan's schema; a scan of a column the files lack is left to
//! DataFusion's own Parquet scan, through the same selection. The filter
//! or join above the scan still compares the values.
//!
//! Two kinds of lookup give the values:
//!
//! - a filter's conjuncts `column IN (literals)` or `column = literal`
//!   over every column of an index ([`index_filters`]): a merge filters
//!   the model's input to the keys it recomputes that way;
//! - a hash join's keys from its other, small side (`index_join`): the
//!   side is collected once, shared with the join, and its key values
//!   looked up.
//!
//! The lookup happens when the scan first runs, and the scan reads as
//! planned when the values pick more than [`MAX_SHARE`] of the rows.
//!
//! A filter's lookups are planned before DataFusion's own physical rules
//! ([`planning_index_filters`]), and such a scan estimates a row per value:
//! a join then builds its hash table on the few rows the index picks, not
//! on a whole table on its other side, and when they are none that side
//! is never read. A join's lookups are planned after them (its sides are
//! chosen by then).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::split_conjunction;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::expressions::{BinaryExpr, Column, InListExpr, Literal};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
use futures::TryStreamExt;
use tokio::sync::OnceCell;

use super::column_index::key_hashes;
use super::index_join::{IndexedTables, SharedExec, replace_leaf, trace};
use super::key_set;
use super::picked_reads::PickedReads;
use crate::catalog::scan_files::{map_scanned_files, narrowed, select_rows};
use crate::storage::Storage;
use crate::udf::occurrence_index::ranges;

/// The index pays while the rows it picks are at most this share of the
/// rows of the files scanned.
pub const MAX_SHARE: f64 = 0.05;

/// A filter's lookups are only used up to this many value combinations.
const MAX_LOOKUPS: usize = 1 << 20;

/// A table with declared indexes, and its current data files.
#[derive(Debug, Clone)]
pub struct ColumnIndexed {
    pub table: String,
    pub files: Vec<String>,
    pub indexes: Vec<Vec<String>>,
    /// What its scans read through an index in this build.
    pub reads: Arc<PickedReads>,
}

impl ColumnIndexed {
    pub fn new(table: String, files: Vec<String>, indexes: Vec<Vec<String>>) -> Self {
        Self {
            table,
            files,
            indexes,
            reads: Arc::default(),
        }
    }
}

/// The files a scan reads, once each (a file split into ranges is one);
/// None unless it is a whole-file Parquet scan (no limit, no ordering it
/// keeps) of plain columns (no expression the optimiser pushed into it).
fn scanned_files(scan: &Arc<dyn ExecutionPlan>) -> Option<Vec<PartitionedFile>> {
    let exec = scan.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    if config.limit.is_some() || scan.properties().output_ordering().is_some() {
        return None;
    }
    if let Some(projection) = config.file_source().projection()
        && !projection.iter().all(|p| {
            p.expr
                .downcast_ref::<Column>()
                .is_some_and(|c| c.name() == p.alias)
        })
    {
        return None;
    }
    let mut files: Vec<PartitionedFile> = Vec::new();
    for group in &config.file_groups {
        for file in group.files() {
            let location = &file.object_meta.location;
            if !files.iter().any(|f| &f.object_meta.location == location) {
                files.push(file.clone());
            }
        }
    }
    Some(files)
}

/// The relative paths of the files a scan reads, once each; None unless
/// it is a whole-file Parquet scan (see [`scanned_files`]).
pub fn scanned_paths(scan: &Arc<dyn ExecutionPlan>, storage: &Storage) -> Option<Vec<String>> {
    Some(
        scanned_files(scan)?
            .iter()
            .map(|f| storage.relative(&f.object_meta.location))
            .collect(),
    )
}

/// Where a scan's values come from.
pub enum Keys {
    /// A filter's values, hashed when planned.
    Hashes(Vec<u64>),
    /// A join's other side: the values of `exprs` over its rows, cast to
    /// the indexed columns' types.
    Rows {
        shared: Arc<SharedExec>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        types: Vec<DataType>,
    },
}

/// A scan of a table with a column index that reads only the rows the
/// looked-up values pick (or all of them, see the module docs).
pub struct IndexedScanExec {
    inner: Arc<Inner>,
}

struct Inner {
    /// The scan as planned.
    scan: Arc<dyn ExecutionPlan>,
    table: ColumnIndexed,
    columns: Vec<String>,
    keys: Keys,
    storage: Storage,
    chosen: OnceCell<std::result::Result<Arc<dyn ExecutionPlan>, Arc<DataFusionError>>>,
}

impl IndexedScanExec {
    pub fn new(
        scan: Arc<dyn ExecutionPlan>,
        table: ColumnIndexed,
        columns: Vec<String>,
        keys: Keys,
        storage: Storage,
    ) -> Self {
        table.reads.register(&scan.schema());
        Self {
            inner: Arc::new(Inner {
                scan,
                table,
                columns,
                keys,
                storage,
                chosen: OnceCell::new(),
            }),
        }
    }

    /// Whether the scan, once run, read through the index.
    #[cfg(test)]
    pub fn used_index(&self) -> Option<bool> {
        match self.inner.chosen.get()? {
            Ok(plan) => Some(!Arc::ptr_eq(plan, &self.inner.scan)),
            Err(_) => None,
        }
    }
}

impl Inner {
    async fn chosen(&self, context: Arc<TaskContext>) -> Result<Arc<dyn ExecutionPlan>> {
        self.chosen
            .get_or_init(|| async { self.choose(context).await.map_err(Arc::new) })
            .await
            .clone()
            .map_err(DataFusionError::Shared)
    }

    /// The scan restricted to the rows the values pick, or as planned.
    async fn choose(&self, context: Arc<TaskContext>) -> Result<Arc<dyn ExecutionPlan>> {
        let clock = std::time::Instant::now();
        let mut wanted: Vec<u64> = Vec::new();
        match &self.keys {
            Keys::Hashes(hashes) => wanted.extend(hashes.iter().copied()),
            Keys::Rows {
                shared,
                exprs,
                types,
            } => {
                for batch in shared.batches(context).await?.iter().flatten() {
                    let mut columns: Vec<ArrayRef> = Vec::with_capacity(exprs.len());
                    for (e, t) in exprs.iter().zip(types) {
                        let values = e.evaluate(batch)?.into_array(batch.num_rows())?;
                        // Keys that do not cast to the column's type: the
                        // scan reads as planned, and the join compares.
                        let Ok(values) = cast(&values, t) else {
                            return Ok(Arc::clone(&self.scan));
                        };
                        columns.push(values);
                    }
                    wanted.extend(key_hashes(&columns)?.into_iter().flatten());
                }
            }
        }
        let Some(files) = scanned_files(&self.scan) else {
            return Ok(Arc::clone(&self.scan));
        };
        let paths: Vec<String> = files
            .iter()
            .map(|f| self.storage.relative(&f.object_meta.location))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let keys = wanted.len();
        let index = self.table.reads.matching(
            &self.storage,
            &self.table.table,
            &self.columns,
            &paths,
            wanted,
        );
        let index = index.await?;
        let (mut picked, mut rows) = (0usize, 0usize);
        let mut picks = Vec::with_capacity(paths.len());
        for ((path, (file_rows, matched)), file) in paths.iter().zip(index.iter()).zip(&files) {
            picked += matched.len();
            rows += file_rows;
            let ranges = ranges(matched.iter().map(|&r| r as usize));
            let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), *file_rows);
            // Less the rows the file is not read through (deleted ones).
            let selection = narrowed(file, selection);
            picks.push((path.clone(), selection.iter().copied().collect()));
        }
        let through_index = picked as f64 <= rows as f64 * MAX_SHARE;
        tracing::debug!(
            table = self.table.table,
            columns = ?self.columns,
            keys,
            picked,
            rows,
            through_index,
            seconds = clock.elapsed().as_secs_f64(),
            "index scan: rows picked"
        );
        if !through_index {
            return Ok(Arc::clone(&self.scan));
        }
        let partitions = self.scan.properties().partitioning.partition_count();
        let schema = self.scan.schema();
        let read = self
            .table
            .reads
            .plan(&self.storage, picks.clone(), &schema, partitions);
        if let Some(plan) = read.await? {
            return Ok(plan);
        }
        // The files lack a column the scan has (its table fills it in):
        // DataFusion's scan reads the picked rows.
        let selections: std::collections::HashMap<String, RowSelection> = picks
            .into_iter()
            .map(|(path, s)| (self.storage.path(&path).to_string(), RowSelection::from(s)))
            .collect();
        map_scanned_files(Arc::clone(&self.scan), |file| {
            Some(match selections.get(file.object_meta.location.as_ref()) {
                Some(selection) => select_rows(file, selection.clone()),
                None => file.clone(),
            })
        })
    }
}

impl fmt::Debug for IndexedScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexedScanExec({})", self.inner.table.table)
    }
}

impl DisplayAs for IndexedScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let by = match &self.inner.keys {
            Keys::Hashes(h) => format!("{} values", h.len()),
            Keys::Rows { .. } => "join keys".into(),
        };
        write!(
            f,
            "IndexedScanExec: table={}, index=({}), by={by}",
            self.inner.table.table,
            self.inner.columns.join(", ")
        )
    }
}

impl ExecutionPlan for IndexedScanExec {
    fn name(&self) -> &str {
        "IndexedScanExec"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.scan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        // A join's shared side is the join's child, not this scan's.
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// A filter's lookup reads about a row per value when it reads
    /// through the index, so the optimiser estimates that many (and the
    /// planned scan's rows when the values are too many for the index to
    /// pay); a join's lookup has no estimate before it runs.
    fn statistics_from_inputs(
        &self,
        _: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let Keys::Hashes(hashes) = &self.inner.keys else {
            return Ok(Arc::new(Statistics::new_unknown(&self.schema())));
        };
        let planned = StatisticsContext::new().compute(self.inner.scan.as_ref(), args)?;
        let partitions = match args.partition() {
            Some(_) => self.properties().partitioning.partition_count().max(1),
            None => 1,
        };
        let looked_up = hashes.len().div_ceil(partitions);
        let rows = match planned.num_rows.get_value() {
            Some(&rows) if looked_up as f64 > rows as f64 * MAX_SHARE => return Ok(planned),
            _ => looked_up,
        };
        let mut statistics = Statistics::new_unknown(&self.schema());
        statistics.num_rows = Precision::Inexact(rows);
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let inner = Arc::clone(&self.inner);
        let stream = futures::stream::once(async move {
            let plan = inner.chosen(Arc::clone(&context)).await?;
            plan.execute(partition, context)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

/// [`index_filters`] as the first of the physical optimiser's rules: the
/// scans it narrows then estimate the rows they read (see
/// `IndexedScanExec::statistics_from_inputs`) when DataFusion picks each
/// hash join's sides, so a join builds on the few rows an index picks
/// rather than on a whole table it could then skip, and a scan of no rows
/// leaves the other side unread.
#[derive(Debug)]
struct IndexFilters(IndexedTables);

impl PhysicalOptimizerRule for IndexFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        index_filters(plan, &self.0)
    }

    fn name(&self) -> &str {
        "index_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `state` planning with [`IndexFilters`] over `indexed` first.
pub fn planning_index_filters(state: SessionState, indexed: &IndexedTables) -> SessionState {
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        vec![Arc::new(IndexFilters(indexed.clone()))];
    rules.extend(state.physical_optimizers().iter().cloned());
    SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build()
}

/// `plan` with each scan under a filter that looks up values of every
/// column of one of its table's indexes read through that index.
pub fn index_filters(
    plan: Arc<dyn ExecutionPlan>,
    indexed: &IndexedTables,
) -> Result<Arc<dyn ExecutionPlan>> {
    if indexed.column_indexed().is_empty() {
        return Ok(plan);
    }
    Ok(plan
        .transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(scan) = lookup_scan(filter, indexed)? else {
                return Ok(Transformed::no(node));
            };
            let input = replace_leaf(filter.input(), &scan)?;
            Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                vec![input],
            )?))
        })?
        .data)
}

/// The values `filter` looks up, per scan column, and an index scan of
/// them when they cover an index.
fn lookup_scan(
    filter: &FilterExec,
    indexed: &IndexedTables,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let mut leaf: Option<Arc<dyn ExecutionPlan>> = None;
    let mut wanted: Vec<(usize, Vec<ScalarValue>)> = Vec::new();
    for conjunct in split_conjunction(filter.predicate()) {
        let Some((column, values)) = looked_up(conjunct) else {
            continue;
        };
        let Some((scan, at)) = trace(filter.input(), column) else {
            continue;
        };
        if leaf.as_ref().is_some_and(|l| !Arc::ptr_eq(l, &scan)) {
            continue;
        }
        leaf = Some(scan);
        if !wanted.iter().any(|(c, _)| *c == at) {
            wanted.push((at, values));
        }
    }
    let Some(scan) = leaf else {
        return Ok(None);
    };
    let storage = indexed.storage();
    let Some(paths) = scanned_paths(&scan, storage) else {
        return Ok(None);
    };
    let Some(table) = indexed.column_table(&paths) else {
        return Ok(None);
    };
    let schema = scan.schema();
    for columns in &table.indexes {
        let sets: Option<Vec<(&Vec<ScalarValue>, DataType)>> = columns
            .iter()
            .map(|c| {
                let at = schema.index_of(c).ok()?;
                let (_, values) = wanted.iter().find(|(w, _)| *w == at)?;
                Some((values, schema.field(at).data_type().clone()))
            })
            .collect();
        let Some(sets) = sets else { continue };
        let Some(hashes) = combination_hashes(&sets)? else {
            continue;
        };
        let scan = IndexedScanExec::new(
            scan,
            table.clone(),
            columns.clone(),
            Keys::Hashes(hashes),
            storage.clone(),
        );
        return Ok(Some(Arc::new(scan)));
    }
    Ok(None)
}

/// `column IN (literals)`, `column = literal` or a merge's key set
/// ([`key_set`]): the column's index in the filter's input, and the
/// non-null values.
fn looked_up(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, Vec<ScalarValue>)> {
    let literal =
        |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Literal>().map(|l| l.value().clone());
    let column = |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Column>().map(Column::index);
    let (at, values) = if let Some((at, keys)) = key_set::looked_up(expr) {
        let values = (0..keys.len())
            .map(|i| ScalarValue::try_from_array(keys, i).ok())
            .collect::<Option<Vec<_>>>()?;
        (at, values)
    } else if let Some(list) = expr.downcast_ref::<InListExpr>() {
        if list.negated() {
            return None;
        }
        let values = list
            .list()
            .iter()
            .map(literal)
            .collect::<Option<Vec<_>>>()?;
        (column(list.expr())?, values)
    } else {
        let binary = expr.downcast_ref::<BinaryExpr>()?;
        if *binary.op() != Operator::Eq {
            return None;
        }
        match (column(binary.left()), literal(binary.right())) {
            (Some(at), Some(value)) => (at, vec![value]),
            _ => (column(binary.right())?, vec![literal(binary.left())?]),
        }
    };
    Some((at, values.into_iter().filter(|v| !v.is_null()).collect()))
}

/// The hashes of every combination of one value per column (each cast to
/// its column's type); None when there are too many, or a value does not
/// cast (the filter then reads as planned).
fn combination_hashes(sets: &[(&Vec<ScalarValue>, DataType)]) -> Result<Option<Vec<u64>>> {
    let count = sets
        .iter()
        .try_fold(1usize, |n, (values, _)| n.checked_mul(values.len()));
    if count.is_none_or(|n| n > MAX_LOOKUPS) {
        return Ok(None);
    }
    let mut rows: Vec<Vec<ScalarValue>> = vec![Vec::new()];
    for (values, t) in sets {
        let Ok(cast) = values
            .iter()
            .map(|v| v.cast_to(t))
            .collect::<Result<Vec<_>>>()
        else {
            return Ok(None);
        };
        rows = rows
            .into_iter()
            .flat_map(|row| {
                cast.iter().map(move |v| {
                    let mut row = row.clone();
                    row.push(v.clone());
                    row
                })
            })
            .collect();
    }
    if rows.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let columns = (0..sets.len())
        .map(|c| ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone())))
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(Some(key_hashes(&columns)?.into_iter().flatten().collect()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::logical_expr::col;
    use datafusion::physical_plan::collect;
    use datafusion::physical_plan::joins::HashJoinExec;
    use datafusion::prelude::DataFrame;

    use super::*;
    use crate::engine::Engine;
    use crate::models::index_join::index_joins;
    use crate::storage::deletes::{DeletedRows, PendingDeletes};
    use crate::storage::publish::{VersionMeta, publish_version};

    const ROWS: i64 = 4000;

    /// Table `t` of rows `(k<n>, n)`: n in 0..ROWS, its first 8 rows
    /// deleted by a second version that adds n in ROWS..ROWS+10; `t`
    /// indexed on `k`.
    async fn table() -> (Arc<Engine>, IndexedTables) {
        let engine = Engine::open("memory://").await.unwrap();
        let storage = engine.storage().clone();
        let rows = |range: std::ops::Range<i64>| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("n", DataType::Int64, false),
            ]));
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        range.clone().map(|n| format!("k{n}")),
                    )),
                    Arc::new(Int64Array::from_iter_values(range)),
                ],
            )
            .unwrap();
            Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(vec![Ok(batch)]),
            )) as SendableRecordBatchStream
        };
        let first = publish_version(
            &storage,
            "public",
            "t",
            rows(0..ROWS),
            VersionMeta::default(),
        )
        .await
        .unwrap()
        .pointer;
        let pending = Arc::new(PendingDeletes::default());
        pending.put(
            [(
                first.files[0].clone(),
                (ROWS as u64, DeletedRows::new((0..8).collect())),
            )]
            .into(),
        );
        let meta = VersionMeta {
            append_to: Some(first),
            deletes: Some(pending),
            ..VersionMeta::default()
        };
        let pointer = publish_version(&storage, "public", "t", rows(ROWS..ROWS + 10), meta)
            .await
            .unwrap()
            .pointer;
        engine.catalog().refresh().await.unwrap();
        let indexes = vec![vec!["k".to_owned()]];
        crate::models::column_index::refresh(&storage, "t", &indexes, &pointer)
            .await
            .unwrap();
        let declared = BTreeMap::from([("t".to_owned(), indexes)]);
        let indexed = IndexedTables::find(engine.catalog(), &storage, &declared)
            .await
            .unwrap();
        (engine, indexed)
    }

    /// `sql` as planned and through the indexes: both results, and whether
    /// an index scan read through its index (None: there was none).
    async fn both(
        engine: &Arc<Engine>,
        indexed: &IndexedTables,
        sql: &str,
    ) -> (String, String, Option<bool>) {
        let frame = engine.context().sql(sql).await.unwrap();
        both_of(engine, indexed, frame).await
    }

    /// [`both`] of a query built as a frame.
    async fn both_of(
        engine: &Arc<Engine>,
        indexed: &IndexedTables,
        frame: DataFrame,
    ) -> (String, String, Option<bool>) {
        let ctx = engine.context();
        let plain = frame.clone().create_physical_plan().await.unwrap();
        let plain = collect(plain, ctx.task_ctx()).await.unwrap();
        // Planned as a merge plans.
        let (state, logical) = frame.into_parts();
        let state = planning_index_filters(state, indexed);
        let planned = state.create_physical_plan(&logical).await.unwrap();
        let rewritten = index_joins(planned, indexed).unwrap();
        let rows = collect(Arc::clone(&rewritten), ctx.task_ctx())
            .await
            .unwrap();
        let mut used = None;
        rewritten
            .apply(|node| {
                if let Some(scan) = node.downcast_ref::<IndexedScanExec>() {
                    used = scan.used_index();
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        let text = |b: &[RecordBatch]| pretty_format_batches(b).unwrap().to_string();
        (text(&plain), text(&rows), used)
    }

    #[tokio::test]
    async fn a_join_builds_on_the_rows_an_index_picks() {
        let (engine, indexed) = table().await;
        // 500 rows: fewer than a filter of `t` is estimated to keep when
        // planned as a plain scan (a fifth of 4,010), more than the four
        // values the index looks up.
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let small = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..500)),
                Arc::new(Int64Array::from_iter_values((0..500).map(|n| n * 10))),
            ],
        )
        .unwrap();
        let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter([Ok(small)]));
        let meta = VersionMeta::default();
        publish_version(engine.storage(), "public", "small", Box::pin(stream), meta)
            .await
            .unwrap();
        engine.catalog().refresh().await.unwrap();
        let sql = "SELECT t.k, small.v FROM small JOIN t ON t.n = small.n \
                   WHERE t.k IN ('k10', 'k2000', 'k3001', 'nope')";
        let (plain, read, used) = both(&engine, &indexed, sql).await;
        assert_eq!(used, Some(true));
        assert_eq!(plain, read);
        assert!(read.contains("| k10 | 100 |"), "{read}");
        let (state, logical) = engine.context().sql(sql).await.unwrap().into_parts();
        let state = planning_index_filters(state, &indexed);
        let planned = state.create_physical_plan(&logical).await.unwrap();
        let mut build_sides = Vec::new();
        planned
            .apply(|node| {
                if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                    let mut indexed_build = false;
                    join.left()
                        .apply(|n| {
                            indexed_build |= n.is::<IndexedScanExec>();
                            Ok(TreeNodeRecursion::Continue)
                        })
                        .unwrap();
                    build_sides.push(indexed_build);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(build_sides, vec![true], "{planned:?}");
    }

    #[tokio::test]
    async fn a_merges_key_set_is_looked_up_through_the_index() {
        let (engine, indexed) = table().await;
        // Past the keys an IN list holds; k3 is deleted, k4005 is in the
        // second file.
        let mut keys: Vec<String> = (0..30).map(|n| format!("k{}", n * 100 + 3)).collect();
        keys.extend(["k4005".to_owned(), "nope".to_owned()]);
        let values: ArrayRef = Arc::new(StringArray::from(keys));
        let filter = key_set::keys_filter(col("k"), values, false).unwrap();
        let frame = engine.context().sql("SELECT k, n FROM t").await.unwrap();
        let frame = frame
            .filter(filter)
            .unwrap()
            .select_columns(&["n"])
            .unwrap();
        let frame = frame.sort_by(vec![col("n")]).unwrap();
        let (plain, read, used) = both_of(&engine, &indexed, frame).await;
        assert_eq!(used, Some(true));
        assert_eq!(plain, read);
        assert!(
            read.contains("| 103 ") && read.contains("| 4005 "),
            "{read}"
        );
        assert!(!read.contains("| 3 "), "{read}");
        assert_eq!(
            read.lines().filter(|l| l.starts_with("| ")).count(),
            31,
            "{read}"
        );
    }

    #[tokio::test]
    async fn lookups_read_the_rows_the_index_picks_and_never_deleted_ones() {
        let (engine, indexed) = table().await;
        // k3 is deleted; k4005 is in the second file.
        let sql = "SELECT n FROM t WHERE k IN ('k3', 'k10', 'k2000', 'k4005', 'nope') ORDER BY n";
        let (plain, read, used) = both(&engine, &indexed, sql).await;
        assert_eq!(used, Some(true));
        assert_eq!(plain, read);
        assert!(
            read.contains("| 10 ") && read.contains("| 4005 ") && !read.contains("| 3 "),
            "{read}"
        );
        let (plain, read, used) = both(
            &engine,
            &indexed,
            "SELECT n FROM t WHERE 'k7' = k AND n > 1",
        )
        .await;
        assert_eq!((used, plain.as_str()), (Some(true), read.as_str()));
        assert!(!read.contains("| 7 "), "{read}");
        // More values than the index pays for: read as planned.
        let many: Vec<String> = (0..ROWS / 5).map(|n| format!("'k{n}'")).collect();
        let sql = format!("SELECT count(*) FROM t WHERE k IN ({})", many.join(", "));
        let (plain, read, used) = both(&engine, &indexed, &sql).await;
        assert_eq!((used, plain.as_str()), (Some(false), read.as_str()));
        assert!(read.contains("| 792 "), "{read}");
        // Not an indexed column, or not a lookup: no index scan.
        let (plain, read, used) = both(&engine, &indexed, "SELECT k FROM t WHERE n = 10").await;
        assert_eq!((used, plain), (None, read));
        let (plain, read, used) = both(
            &engine,
            &indexed,
            "SELECT n FROM t WHERE k <> 'k9' AND n < 12",
        )
        .await;
        assert_eq!((used, plain), (None, read));
    }

    #[tokio::test]
    async fn a_join_reads_the_rows_its_other_sides_keys_pick() {
        let (engine, _) = table().await;
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, false)]));
        let keys = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec![
                "k1", "k12", "k3999", "k4009", "zz",
            ]))],
        )
        .unwrap();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(keys)]),
        ));
        publish_version(
            engine.storage(),
            "public",
            "keys",
            stream,
            VersionMeta::default(),
        )
        .await
        .unwrap();
        engine.catalog().refresh().await.unwrap();
        let declared = BTreeMap::from([("t".to_owned(), vec![vec!["k".to_owned()]])]);
        let indexed = IndexedTables::find(engine.catalog(), engine.storage(), &declared)
            .await
            .unwrap();
        for sql in [
            "SELECT t.n FROM keys JOIN t ON t.k = keys.a ORDER BY 1",
            "SELECT t.n FROM t WHERE t.k IN (SELECT a FROM keys) ORDER BY 1",
            "SELECT keys.a, t.n FROM keys LEFT JOIN t ON t.k = keys.a ORDER BY 1",
        ] {
            let (plain, read, used) = both(&engine, &indexed, sql).await;
            assert_eq!(used, Some(true), "{sql}");
            assert_eq!(plain, read, "{sql}");
            assert!(
                read.contains("| 12 ") && read.contains("| 4009 ") && !read.contains("| 1 "),
                "{sql}: {read}"
            );
        }
    }
}
