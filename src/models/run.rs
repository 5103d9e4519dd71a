//! Building models: each selected model, in dependency order, is planned
//! against the current catalog, executed, and published atomically. A model
//! that fails keeps its previous version; the models that read it are
//! skipped, independent ones still build. Every model yields metrics.
//!
//! Every version records what it was built from (the files of each raw
//! source and table it read, and a digest of its SQL). An incremental model
//! (`{{ config(materialized='incremental') }}`) uses that record: its raw
//! sources are read only from the files that arrived since, and its rows
//! are appended to the current version's files. It is rebuilt whole when
//! its SQL changed, when a file it had read is gone or changed size (the
//! source was rewritten, not appended to), when its columns changed, or
//! with `--full-refresh`. Without a `unique_key`, tables it reads are read
//! whole, as dbt does; with one, a merge follows the changes of the tables
//! too, through the views it reads ([`super::changed`], [`merge`]).
//!
//! A model whose query only reads one table function, whole, is offered a
//! delta ([`DeltaTarget`]): a function that can state its result as changes
//! to the model's current version (`resolve_identities` naming the model as
//! its previous output) emits only new rows and names the rows it deletes,
//! and the version is published as the current files less those rows plus
//! the new ones. When a quarter of the stored rows are deleted ones, the
//! table is compacted (rewritten whole) after the build.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::Statement as DFStatement;

use super::changed;
use super::column_index;
use super::dag::{self, Node};
use super::index_join::IndexedTables;
use super::merge::{self, Merge};
use super::occurrence_lookups::OccurrenceLookups;
use super::table_diff;
use super::template::{self, Materialized};
use crate::catalog::scan_files::ScanFiles;
use crate::catalog::{DEFAULT_SCHEMA, RelationKind};
use crate::engine::{DeltaTarget, Engine, FullRefresh};
use crate::error::{Error, Result};
use crate::segments::{self, refresh::SegmentRefresh};
use crate::storage::deletes::{NewDeletes, PendingDeletes};
use crate::storage::publish::{self, InputFiles, TablePointer, VersionMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    Built,
    Failed,
    /// Not built because a model it reads failed.
    Skipped,
}

/// How a built model was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// From all of its input.
    Full,
    /// Only the raw files that arrived since its last run were read.
    Incremental,
    /// No new raw files (incremental), or a rebuild with the current
    /// version's content: the current version was kept.
    Unchanged,
    /// Rebuilt from all of its input, and published as the rows that
    /// changed (see [`table_diff`]).
    Changes,
    /// A view model: (re)created, nothing stored.
    View,
}

#[derive(Debug, Clone)]
pub struct ModelMetrics {
    pub model: String,
    pub status: ModelStatus,
    pub mode: BuildMode,
    /// Rows written by this run (for an incremental build, the new ones).
    pub new_rows: u64,
    /// Rows of the previous version an incremental build deleted.
    pub deleted_rows: u64,
    /// The build rewrote its deleted rows away (see `compact`).
    pub compacted: bool,
    pub rows: u64,
    pub bytes: u64,
    pub files: usize,
    pub seconds: f64,
    pub error: Option<String>,
    /// Why an incremental model was rebuilt whole.
    pub note: Option<String>,
}

/// Progress, for a display.
pub enum Event<'a> {
    Started {
        model: &'a str,
        index: usize,
        total: usize,
    },
    Finished(&'a ModelMetrics),
    /// A segment was refreshed (after every model).
    Segment(&'a SegmentRefresh),
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    pub models: Vec<ModelMetrics>,
    /// Each segment's refresh, after the models.
    pub segments: Vec<SegmentRefresh>,
}

impl RunReport {
    pub fn failed(&self) -> Vec<&ModelMetrics> {
        self.models
            .iter()
            .filter(|m| m.status != ModelStatus::Built)
            .collect()
    }
}

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Rebuild incremental models from all their input.
    pub full_refresh: bool,
    /// The time segment changes are recorded at (default: now; the
    /// scheduler passes its clock's).
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

/// Builds the selected models (all when `selection` is None).
pub async fn run(
    engine: &Arc<Engine>,
    nodes: &BTreeMap<String, Node>,
    selection: Option<&BTreeSet<String>>,
    options: RunOptions,
    mut on_event: impl FnMut(Event),
) -> Result<RunReport> {
    engine.catalog().refresh_sources().await?;
    let order: Vec<String> = dag::order(nodes)?
        .into_iter()
        .filter(|m| selection.is_none_or(|s| s.contains(m)))
        .collect();
    let total = order.len();
    // Every model's declared indexes, selected or not: a merge reads
    // through those of the tables it reads.
    let declared: BTreeMap<String, Vec<Vec<String>>> = nodes
        .iter()
        .filter(|(_, n)| !n.config.indexes.is_empty())
        .map(|(name, n)| (name.clone(), n.config.indexes.clone()))
        .collect();
    // Occurrence-index lookups the run's builds share.
    let lookups = Arc::new(OccurrenceLookups::default());
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let mut report = RunReport {
        models: Vec::new(),
        segments: Vec::new(),
    };
    for (index, name) in order.iter().enumerate() {
        let node = &nodes[name];
        on_event(Event::Started {
            model: name,
            index,
            total,
        });
        let metrics = if let Some(failed) = node.depends_on.iter().find(|d| broken.contains(*d)) {
            broken.insert(name.clone());
            ModelMetrics {
                model: name.clone(),
                status: ModelStatus::Skipped,
                mode: BuildMode::Full,
                new_rows: 0,
                deleted_rows: 0,
                compacted: false,
                rows: 0,
                bytes: 0,
                files: 0,
                seconds: 0.0,
                error: Some(format!("skipped: {failed} failed")),
                note: None,
            }
        } else {
            let started = Instant::now();
            match build_indexed(engine, node, &declared, &lookups, options).await {
                Ok(built) => ModelMetrics {
                    model: name.clone(),
                    status: ModelStatus::Built,
                    mode: built.mode,
                    new_rows: built.new_rows,
                    deleted_rows: built.deleted_rows,
                    compacted: built.compacted,
                    rows: built.pointer.as_ref().map_or(0, |p| p.rows),
                    bytes: built.pointer.as_ref().map_or(0, |p| p.bytes),
                    files: built.pointer.as_ref().map_or(0, |p| p.files.len()),
                    seconds: started.elapsed().as_secs_f64(),
                    error: None,
                    note: built.note,
                },
                Err(e) => {
                    broken.insert(name.clone());
                    ModelMetrics {
                        model: name.clone(),
                        status: ModelStatus::Failed,
                        mode: BuildMode::Full,
                        new_rows: 0,
                        deleted_rows: 0,
                        compacted: false,
                        rows: 0,
                        bytes: 0,
                        files: 0,
                        seconds: started.elapsed().as_secs_f64(),
                        error: Some(e.to_string()),
                        note: None,
                    }
                }
            }
        };
        on_event(Event::Finished(&metrics));
        report.models.push(metrics);
    }
    // The models stand whatever happens to the segments: a refresh that
    // cannot run is reported with the run, not instead of it.
    let now = options.now.unwrap_or_else(chrono::Utc::now);
    report.segments = match segments::refresh::refresh(engine, now).await {
        Ok(refreshed) => refreshed,
        Err(e) => vec![SegmentRefresh {
            segment: "(all)".into(),
            members: 0,
            entered: 0,
            exited: 0,
            error: Some(e.to_string()),
        }],
    };
    for s in &report.segments {
        on_event(Event::Segment(s));
    }
    Ok(report)
}

struct Built {
    /// The version published (none for a view).
    pointer: Option<TablePointer>,
    mode: BuildMode,
    new_rows: u64,
    deleted_rows: u64,
    compacted: bool,
    /// Why an incremental model was rebuilt whole.
    note: Option<String>,
}

/// Builds a model, then brings its table's declared indexes up to date
/// with the version published (see [`super::column_index`]).
async fn build_indexed(
    engine: &Arc<Engine>,
    node: &Node,
    declared: &BTreeMap<String, Vec<Vec<String>>>,
    lookups: &Arc<OccurrenceLookups>,
    options: RunOptions,
) -> Result<Built> {
    let built = build_one(engine, node, declared, lookups, options).await?;
    if let Some(pointer) = &built.pointer
        && node.config.materialized != Materialized::View
    {
        column_index::refresh(
            engine.storage(),
            &node.model.name,
            &node.config.indexes,
            pointer,
        )
        .await
        .map_err(|e| Error::Model {
            model: node.model.name.clone(),
            path: node.model.path.clone(),
            message: format!("indexes: {e}"),
        })?;
    }
    Ok(built)
}

async fn build_one(
    engine: &Arc<Engine>,
    node: &Node,
    declared: &BTreeMap<String, Vec<Vec<String>>>,
    lookups: &Arc<OccurrenceLookups>,
    options: RunOptions,
) -> Result<Built> {
    let name = &node.model.name;
    let model_err = |e: DataFusionError| Error::Model {
        model: name.clone(),
        path: node.model.path.clone(),
        message: describe(&e, &node.sql),
    };
    let other_err = |e: Error| match e {
        Error::DataFusion(d) => model_err(d),
        other @ Error::Model { .. } => other,
        other => Error::Model {
            model: name.clone(),
            path: node.model.path.clone(),
            message: other.to_string(),
        },
    };
    let catalog = engine.catalog();
    let existing = catalog
        .snapshot()
        .relation(DEFAULT_SCHEMA, name)
        .map(|r| r.kind);
    if node.config.materialized == Materialized::View {
        return build_view(engine, node, existing).await.map_err(other_err);
    }
    if existing == Some(RelationKind::View) {
        // A view model that became a table.
        execute_sql(
            engine,
            &format!("DROP VIEW \"{DEFAULT_SCHEMA}\".\"{name}\""),
        )
        .await
        .map_err(other_err)?;
    }
    if let Some(csv) = &node.model.seed {
        return build_seed(engine, name, csv).await.map_err(other_err);
    }
    let current = catalog
        .snapshot()
        .relation(DEFAULT_SCHEMA, name)
        .and_then(|r| r.pointer.clone());
    let sql_hash = sql_digest(&node.model.sql);
    let session = engine.session();
    if options.full_refresh {
        session
            .context()
            .state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(FullRefresh));
    }

    // An incremental build, when the current version allows one.
    let mut plan = None;
    let mut append_to = None;
    let mut note = None;
    if node.config.materialized == Materialized::Incremental
        && !options.full_refresh
        && let Some(current) = current
            .clone()
            .filter(|c| c.sql_hash.as_deref() == Some(&sql_hash))
    {
        let rendered = template::render(&node.model.sql, true).map_err(|message| Error::Model {
            model: name.clone(),
            path: node.model.path.clone(),
            message,
        })?;
        let statement = dag::parse_model(&node.model, &rendered.sql)?;
        let DFStatement::Statement(stmt) = &statement else {
            return Err(model_err(DataFusionError::Plan("not a query".into())));
        };
        let full = session.plan(stmt).await.map_err(other_err)?;
        if !node.config.unique_key.is_empty() && node.config.event_time.is_none() {
            // A merge by key follows every input's changes, tables too.
            let DFStatement::Statement(stmt) = &node.statement else {
                return Err(model_err(DataFusionError::Plan("not a query".into())));
            };
            let everything = session.plan(stmt).await.map_err(other_err)?;
            let state = session.context().state();
            match changed::changed(engine, &state, everything, &current)
                .await
                .map_err(other_err)?
            {
                Err(reason) => {
                    tracing::info!(model = %name, %reason, "rebuilt whole");
                    note = Some(reason);
                }
                Ok(changed) if !same_columns(changed.plan.schema().as_arrow(), &current) => {
                    note = Some("its columns changed".into());
                }
                Ok(changed) => {
                    let inputs = input_files(engine, node, &changed.plan);
                    let indexed = IndexedTables::find(engine.catalog(), engine.storage(), declared)
                        .await
                        .map_err(other_err)?
                        .sharing(Arc::clone(lookups));
                    let merged = merge::merge_changes(
                        session.context(),
                        engine.storage(),
                        &indexed,
                        &node.config,
                        &changed,
                        &current,
                    )
                    .await
                    .map_err(other_err)?;
                    match merged {
                        Merge::Rows { rows, deletes } => {
                            return publish_merge(
                                engine, node, current, rows, deletes, inputs, &sql_hash,
                            )
                            .await
                            .map_err(other_err);
                        }
                        Merge::Rebuild(reason) => note = Some(reason),
                    }
                }
            }
        } else {
            match restrict_to_new_files(engine, &full, &current)? {
                Some(new) if new.files == 0 => {
                    // Nothing arrived: the current version stands.
                    return Ok(Built {
                        pointer: Some(current),
                        mode: BuildMode::Unchanged,
                        new_rows: 0,
                        deleted_rows: 0,
                        compacted: false,
                        note: None,
                    });
                }
                Some(new) if same_columns(new.plan.schema().as_arrow(), &current) => {
                    if node.config.unique_key.is_empty() {
                        plan = Some(new.plan);
                        append_to = Some(current);
                    } else {
                        let DFStatement::Statement(stmt) = &node.statement else {
                            return Err(model_err(DataFusionError::Plan("not a query".into())));
                        };
                        let everything = session.plan(stmt).await.map_err(other_err)?;
                        let inputs = input_files(engine, node, &everything);
                        let event_time = node.config.event_time.as_deref().unwrap_or_default();
                        let merged = merge::merge_by_time(
                            session.context(),
                            engine.storage(),
                            &node.config,
                            event_time,
                            everything,
                            &new.sources,
                            &current,
                        )
                        .await
                        .map_err(other_err)?;
                        match merged {
                            Merge::Rows { rows, deletes } => {
                                return publish_merge(
                                    engine, node, current, rows, deletes, inputs, &sql_hash,
                                )
                                .await
                                .map_err(other_err);
                            }
                            Merge::Rebuild(reason) => {
                                tracing::info!(model = %name, %reason, "rebuilt whole");
                                note = Some(reason);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let plan = match plan {
        Some(p) => p,
        None => {
            let DFStatement::Statement(stmt) = &node.statement else {
                return Err(model_err(DataFusionError::Plan("not a query".into())));
            };
            session.plan(stmt).await.map_err(other_err)?
        }
    };
    // A query that only reads a table function may answer with a delta.
    // (The function itself checks that its inputs allow it.)
    let delta = match &current {
        Some(base)
            if append_to.is_none()
                && !options.full_refresh
                && base.sql_hash.as_deref() == Some(&sql_hash)
                && reads_one_relation(&plan) =>
        {
            let target = Arc::new(DeltaTarget::new(name, base.clone()));
            session
                .context()
                .state_ref()
                .write()
                .config_mut()
                .set_extension(Arc::clone(&target));
            Some(target)
        }
        _ => None,
    };
    let inputs = input_files(engine, node, &plan);
    // A whole rebuild of a small table may be published as its changes.
    let compare_with = current.clone().filter(|c| {
        append_to.is_none()
            && !options.full_refresh
            && table_diff::comparable(c)
            && same_columns(plan.schema().as_arrow(), c)
    });
    let mut stream = session
        .context()
        .execute_logical_plan(plan)
        .await
        .map_err(model_err)?
        .execute_stream()
        .await
        .map_err(model_err)?;
    let mut deletes = None;
    if let Some(target) = delta.filter(|t| t.claimed()) {
        append_to = Some(target.base.clone());
        deletes = Some(Arc::clone(&target.deletes));
    } else if let Some(current) = compare_with {
        match table_diff::compare(engine.storage(), &current, stream)
            .await
            .map_err(other_err)?
        {
            table_diff::Rebuilt::Changes { appended, deletes } => {
                let mut built =
                    publish_merge(engine, node, current, appended, deletes, inputs, &sql_hash)
                        .await
                        .map_err(other_err)?;
                // A rebuild for a reason says so, changes or none.
                if built.mode == BuildMode::Incremental || note.is_some() {
                    built.mode = BuildMode::Changes;
                }
                built.note = note;
                return Ok(built);
            }
            table_diff::Rebuilt::Whole(all) => stream = all,
        }
    }
    let incremental = append_to.is_some();
    let meta = VersionMeta {
        produced_by: Some(format!("model {name} ({})", node.model.path)),
        inputs,
        sql_hash: Some(sql_hash),
        append_to,
        deletes,
    };
    let published =
        publish::publish_version(engine.storage(), DEFAULT_SCHEMA, name, stream, meta.clone())
            .await
            .map_err(other_err)?;
    catalog.refresh().await?;
    let mut pointer = published.pointer;
    let compacted = needs_compaction(&pointer);
    if compacted {
        pointer = compact(engine, name, meta).await.map_err(other_err)?;
        catalog.refresh().await?;
    }
    Ok(Built {
        mode: if published.unchanged {
            BuildMode::Unchanged
        } else if incremental {
            BuildMode::Incremental
        } else {
            BuildMode::Full
        },
        new_rows: published.new_rows,
        deleted_rows: published.deleted_rows,
        compacted,
        pointer: Some(pointer),
        note,
    })
}

/// A view model: `CREATE OR REPLACE VIEW public.<model> AS <its SQL>`,
/// planned now, so a model that no longer plans fails its run, and read
/// against the current versions of what it names whenever it is read.
async fn build_view(
    engine: &Arc<Engine>,
    node: &Node,
    existing: Option<RelationKind>,
) -> Result<Built> {
    let name = &node.model.name;
    if existing == Some(RelationKind::Table) {
        // A table model that became a view.
        execute_sql(
            engine,
            &format!("DROP TABLE \"{DEFAULT_SCHEMA}\".\"{name}\""),
        )
        .await?;
    }
    let sql = node.sql.trim().trim_end_matches(';');
    execute_sql(
        engine,
        &format!("CREATE OR REPLACE VIEW \"{DEFAULT_SCHEMA}\".\"{name}\" AS {sql}"),
    )
    .await?;
    Ok(Built {
        pointer: None,
        mode: BuildMode::View,
        new_rows: 0,
        deleted_rows: 0,
        compacted: false,
        note: None,
    })
}

/// A seed: its CSV file (with a header; column types inferred from the
/// values) published as a table. A CSV whose rows did not change keeps the
/// table's version.
async fn build_seed(engine: &Arc<Engine>, name: &str, csv: &std::path::Path) -> Result<Built> {
    let path = csv.display().to_string();
    let content =
        std::fs::read_to_string(csv).map_err(|e| Error::io(format!("reading {path}"), e))?;
    let options = datafusion::prelude::CsvReadOptions::new()
        .has_header(true)
        .file_extension(".csv");
    let stream = engine
        .session()
        .context()
        .read_csv(path.as_str(), options)
        .await?
        .execute_stream()
        .await?;
    let meta = VersionMeta {
        produced_by: Some(format!("seed {path}")),
        inputs: BTreeMap::new(),
        sql_hash: Some(sql_digest(&content)),
        append_to: None,
        deletes: None,
    };
    let published =
        publish::publish_version(engine.storage(), DEFAULT_SCHEMA, name, stream, meta).await?;
    engine.catalog().refresh().await?;
    Ok(Built {
        mode: if published.unchanged {
            BuildMode::Unchanged
        } else {
            BuildMode::Full
        },
        new_rows: published.new_rows,
        deleted_rows: 0,
        compacted: false,
        pointer: Some(published.pointer),
        note: None,
    })
}

/// Publishes a merge: the current version less the rows it replaces, plus
/// the recomputed rows.
async fn publish_merge(
    engine: &Arc<Engine>,
    node: &Node,
    current: TablePointer,
    rows: Vec<RecordBatch>,
    deletes: NewDeletes,
    inputs: BTreeMap<String, InputFiles>,
    sql_hash: &str,
) -> Result<Built> {
    let name = &node.model.name;
    let schema = current.arrow_schema()?;
    let rows = rows
        .into_iter()
        .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let pending = Arc::new(PendingDeletes::default());
    pending.put(deletes);
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        futures::stream::iter(rows.into_iter().map(Ok)),
    ));
    let meta = VersionMeta {
        produced_by: Some(format!("model {name} ({})", node.model.path)),
        inputs,
        sql_hash: Some(sql_hash.to_owned()),
        append_to: Some(current),
        deletes: Some(pending),
    };
    let published =
        publish::publish_version(engine.storage(), DEFAULT_SCHEMA, name, stream, meta.clone())
            .await?;
    engine.catalog().refresh().await?;
    let mut pointer = published.pointer;
    let compacted = needs_compaction(&pointer);
    if compacted {
        pointer = compact(engine, name, meta).await?;
        engine.catalog().refresh().await?;
    }
    Ok(Built {
        mode: if published.unchanged {
            BuildMode::Unchanged
        } else {
            BuildMode::Incremental
        },
        new_rows: published.new_rows,
        deleted_rows: published.deleted_rows,
        compacted,
        pointer: Some(pointer),
        note: None,
    })
}

/// Runs DDL as a client would send it, in a session of the engine.
async fn execute_sql(engine: &Arc<Engine>, sql: &str) -> Result<()> {
    let mut session = engine.session();
    for statement in session.parse(sql)? {
        session.execute(statement, None).await?;
    }
    Ok(())
}

/// Whether a version's deleted rows are a quarter of its data files' rows
/// or more: reading them costs more than rewriting the table once.
fn needs_compaction(pointer: &TablePointer) -> bool {
    let deleted = pointer.deleted_rows();
    deleted > 0 && deleted * 4 >= pointer.rows + deleted
}

/// Rewrites a table's live rows as a version of its own (no deleted rows),
/// with the same record of what it was built from.
async fn compact(engine: &Arc<Engine>, name: &str, meta: VersionMeta) -> Result<TablePointer> {
    let started = Instant::now();
    let stream = engine
        .session()
        .context()
        .sql(&format!("SELECT * FROM \"{DEFAULT_SCHEMA}\".\"{name}\""))
        .await?
        .execute_stream()
        .await?;
    let meta = VersionMeta {
        append_to: None,
        deletes: None,
        ..meta
    };
    let published =
        publish::publish_version(engine.storage(), DEFAULT_SCHEMA, name, stream, meta).await?;
    tracing::info!(
        model = name,
        rows = published.pointer.rows,
        seconds = started.elapsed().as_secs_f64(),
        "compacted: deleted rows rewritten away"
    );
    Ok(published.pointer)
}

/// Does the plan read one relation, whole and unchanged (`SELECT *` of a
/// table or table function)? Only then may the relation state the model's
/// result as a delta.
fn reads_one_relation(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => {
            p.expr.len() == p.input.schema().fields().len()
                && p.expr.iter().enumerate().all(|(i, e)| {
                    matches!(e, Expr::Column(c) if p.input.schema().index_of_column(c).ok() == Some(i))
                })
                && reads_one_relation(&p.input)
        }
        LogicalPlan::SubqueryAlias(a) => reads_one_relation(&a.input),
        LogicalPlan::TableScan(scan) => {
            scan.filters.is_empty()
                && scan.fetch.is_none()
                && scan.projection.as_ref().is_none_or(|p| {
                    p.len() == scan.source.schema().fields().len()
                        && p.iter().enumerate().all(|(i, &c)| i == c)
                })
        }
        _ => false,
    }
}

/// A model's plan over the raw files that arrived since its last run.
struct NewFiles {
    plan: LogicalPlan,
    /// How many files arrived.
    files: usize,
    /// Each raw source the plan reads, restricted to its new files.
    sources: merge::NewSources,
}

/// The plan with each raw source read only from the files that arrived
/// since `current` was built; None when an incremental build is not
/// possible (a source was not read before, or was rewritten rather than
/// appended to).
fn restrict_to_new_files(
    engine: &Arc<Engine>,
    plan: &LogicalPlan,
    current: &TablePointer,
) -> Result<Option<NewFiles>> {
    let catalog = engine.catalog();
    let snapshot = catalog.snapshot();
    let mut possible = true;
    let mut new_files = 0;
    let mut sources: merge::NewSources = Vec::new();
    let restricted = plan.clone().transform_up(|node| {
        let LogicalPlan::TableScan(mut scan) = node else {
            return Ok(Transformed::no(node));
        };
        let name = scan.table_name.table();
        let is_source = scan.table_name.schema().is_none_or(|s| s == DEFAULT_SCHEMA)
            && snapshot
                .relation(DEFAULT_SCHEMA, name)
                .is_some_and(|r| r.kind == RelationKind::Source);
        if !is_source {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        let appended = match (current.inputs.get(name), catalog.input_files(name)) {
            (Some(before), Some(now)) => before.appended(&now),
            _ => None,
        };
        let Some(appended) = appended else {
            possible = false;
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        };
        new_files += appended.len();
        let provider = source_as_provider(&scan.source)?;
        let subset = ScanFiles::subset(
            crate::catalog::resident::file_provider(&provider),
            engine.storage(),
            appended.iter().map(|(path, _)| path),
        );
        let subset: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(subset);
        sources.push((name.to_owned(), Arc::clone(&subset)));
        scan.source = provider_as_source(subset);
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })?;
    Ok(possible.then_some(NewFiles {
        plan: restricted.data,
        files: new_files,
        sources,
    }))
}

/// The files of everything the model reads: the relations its plan scans
/// and the models it names (a table function reads those when it runs).
fn input_files(
    engine: &Arc<Engine>,
    node: &Node,
    plan: &LogicalPlan,
) -> BTreeMap<String, InputFiles> {
    let mut names: BTreeSet<String> = node.depends_on.clone();
    let _ = plan.apply(|n| {
        if let LogicalPlan::TableScan(scan) = n
            && scan.table_name.schema().is_none_or(|s| s == DEFAULT_SCHEMA)
        {
            names.insert(scan.table_name.table().to_owned());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    // A view's version is the versions of what it reads.
    let snapshot = engine.catalog().snapshot();
    let mut pending: Vec<String> = names.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        let Some(view) = snapshot
            .relation(DEFAULT_SCHEMA, &name)
            .and_then(|r| r.view.as_ref())
        else {
            continue;
        };
        for read in &view.depends_on {
            let read = read
                .strip_prefix(&format!("{DEFAULT_SCHEMA}."))
                .unwrap_or(read);
            if names.insert(read.to_owned()) {
                pending.push(read.to_owned());
            }
        }
    }
    names
        .into_iter()
        .filter_map(|n| engine.catalog().input_files(&n).map(|f| (n, f)))
        .collect()
}

/// Does a plan give the columns (names and types) of a table's version?
fn same_columns(schema: &datafusion::arrow::datatypes::Schema, version: &TablePointer) -> bool {
    let columns = publish::columns_of(schema);
    columns.len() == version.columns.len()
        && columns
            .iter()
            .zip(&version.columns)
            .all(|(a, b)| a.name == b.name && a.data_type == b.data_type)
}

/// A digest of a model's SQL template (FNV-1a, hex).
fn sql_digest(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The error, with the SQL position and line when DataFusion knows it.
fn describe(e: &DataFusionError, sql: &str) -> String {
    let base = e.to_string();
    let Some(span) = e.diagnostic().and_then(|d| d.span) else {
        return base;
    };
    let line_no = span.start.line as usize;
    let line = sql
        .lines()
        .nth(line_no.saturating_sub(1))
        .unwrap_or("")
        .trim_end();
    format!(
        "{base}\n  at line {line_no}, column {}:\n    {line}\n    {}^",
        span.start.column,
        " ".repeat((span.start.column as usize).saturating_sub(1))
    )
}
