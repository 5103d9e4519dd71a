//! `resolve_identities('occurrences' [, 'rules' [, 'previous']])`: a table
//! function that resolves the identifier occurrences in a table (columns
//! `source`, `row_key`, `ts`, `id_type`, `id_value`, and optionally
//! `reject_reason`) into profiles, following the rules table (see
//! [`crate::identity::rules`]; `''` or none: only `user_id` is limited, to
//! one per profile). `previous` names the function's own earlier output (a
//! model passes its own name): profile ids are kept from it, and every id
//! change is recorded as a `redirect` row. See [`crate::identity::resolve`]
//! for the rules and the output columns.
//!
//! The work happens when the plan executes (not when it is planned), on a
//! blocking thread, over the inputs collected from all partitions; the
//! output streams out batch by batch as it is built, so it is never held
//! whole. Its working memory is reserved from the session's memory pool
//! first, so past `--memory-limit` it stops with a message saying how much
//! it needs.
//!
//! **Incremental**: when the previous output was built (by a model run)
//! from files of the occurrences table that are all still there, and from
//! the same rules version, only the components the new files reach are
//! resolved again ([`crate::identity::incremental`]); the result equals a
//! full run. The earlier rows of those components are found through the
//! occurrence index ([`super::occurrence_index`]) rather than by decoding
//! every earlier occurrence. `profiledb run --full-refresh` resolves
//! everything.
//!
//! **Delta**: when a model run offers it (`engine::DeltaTarget`, the model
//! being the previous output), an incremental run emits only the rows of
//! the touched components and hands over the previous rows they replace.
//! It then reads the previous output through the graph index
//! ([`super::graph_index`]): the keys of every row, and whole only the rows
//! it replaces or needs. Without one (a query of the function), the
//! previous output is read whole and the whole new output emitted.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, TableReference, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, reset_plan_states};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect,
    execute_stream,
};
use futures::StreamExt;

use super::graph_index;
use super::occurrence_index::OccurrenceIndex;
use crate::catalog::scan_files::ScanFiles;
use crate::catalog::{Catalog, DEFAULT_SCHEMA};
use crate::engine::{DeltaTarget, FullRefresh};
use crate::identity::incremental::{PreviousOutput, Scope, filter_kept};
use crate::identity::resolve::{
    INPUT_COLUMNS, Previous, input_schema, memory_estimate, output_schema, resolve, resolve_into,
};
use crate::identity::rules::{RULE_COLUMNS, Rules};
use crate::storage::Storage;
use crate::storage::live_rows::LiveRows;
use crate::storage::publish::TablePointer;

#[derive(Debug)]
pub struct ResolveIdentitiesFunc {
    catalog: Arc<Catalog>,
}

impl ResolveIdentitiesFunc {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

impl TableFunctionImpl for ResolveIdentitiesFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let text = |i: usize| super::text_literal("resolve_identities", exprs, i);
        let Some(table) = text(0)? else {
            return plan_err!(
                "resolve_identities('occurrences' [, 'rules' [, 'previous']]) needs the name of a table of identifier occurrences"
            );
        };
        if exprs.len() > 3 {
            return plan_err!(
                "resolve_identities takes at most 3 arguments, got {}",
                exprs.len()
            );
        }
        let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(Arc::new(ResolveIdentitiesTable {
            catalog: Arc::clone(&self.catalog),
            table,
            rules_table: non_empty(text(1)?),
            previous_table: non_empty(text(2)?),
        }))
    }
}

#[derive(Debug)]
struct ResolveIdentitiesTable {
    catalog: Arc<Catalog>,
    table: String,
    rules_table: Option<String>,
    previous_table: Option<String>,
}

/// The occurrence files an incremental run reads: those the previous
/// output has not seen, and those it has; and the previous output.
struct Increment {
    new_files: Vec<String>,
    seen_files: Vec<(String, u64)>,
    previous: TablePointer,
}

/// What an incremental run reads besides its inputs: the previous output
/// (read with each row's place, which a delta deletes by) and the
/// occurrence files it had seen (for their [`OccurrenceIndex`]); and,
/// when its output replaces the previous one as a delta, where the
/// deleted rows go.
#[derive(Debug, Clone)]
struct History {
    storage: Storage,
    table: String,
    files: Vec<(String, u64)>,
    previous: TablePointer,
    delta: Option<Arc<DeltaTarget>>,
}

impl ResolveIdentitiesTable {
    /// Whether this run can be incremental (see the module docs).
    fn increment(&self, state: &SessionState) -> Option<Increment> {
        if state.config().get_extension::<FullRefresh>().is_some() {
            return None;
        }
        let snapshot = self.catalog.snapshot();
        let previous = snapshot
            .relation(DEFAULT_SCHEMA, self.previous_table.as_deref()?)?
            .pointer
            .as_ref()?;
        if !previous.columns.iter().any(|c| c.name == "component_id") {
            return None;
        }
        let seen = previous.inputs.get(&self.table)?;
        let now = self.catalog.input_files(&self.table)?;
        now.version.as_ref()?;
        // The index reads occurrence files whole, deleted rows included.
        if !now.deleted.is_empty() {
            return None;
        }
        let new_files = seen.appended(&now)?;
        if let Some(rules) = &self.rules_table
            && previous.inputs.get(rules)?.version != self.catalog.input_files(rules)?.version
        {
            return None;
        }
        Some(Increment {
            new_files: new_files.into_iter().map(|(p, _)| p).collect(),
            seen_files: seen.files.clone(),
            previous: previous.clone(),
        })
    }

    /// The occurrences in `files` of the occurrences table, as the
    /// resolver's input columns.
    async fn occurrences_in(
        &self,
        state: &SessionState,
        files: &[String],
        has_reason: bool,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let relation = self
            .catalog
            .snapshot()
            .relation(DEFAULT_SCHEMA, &self.table)
            .cloned()
            .ok_or_else(|| DataFusionError::Plan(format!("no table {}", self.table)))?;
        let subset = ScanFiles::subset(
            crate::catalog::resident::file_provider(&relation.provider),
            self.catalog.storage(),
            files,
        );
        let columns: Vec<Expr> = INPUT_COLUMNS
            .iter()
            .map(|&c| match c {
                "reject_reason" if !has_reason => {
                    lit(ScalarValue::Utf8(None)).alias("reject_reason")
                }
                c => Expr::Column(datafusion::common::Column::new_unqualified(c)),
            })
            .collect();
        let plan = LogicalPlanBuilder::scan(
            self.table.as_str(),
            provider_as_source(Arc::new(subset)),
            None,
        )?
        .project(columns)?
        .build()?;
        state.create_physical_plan(&plan).await
    }
}

async fn plan_input(
    state: &SessionState,
    sql: &str,
    what: impl Fn(DataFusionError) -> String,
) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = state
        .create_logical_plan(sql)
        .await
        .map_err(|e| DataFusionError::Plan(what(e)))?;
    state.create_physical_plan(&plan).await
}

#[async_trait::async_trait]
impl TableProvider for ResolveIdentitiesTable {
    fn schema(&self) -> SchemaRef {
        output_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = super::full_session("resolve_identities", state)?;
        // `reject_reason` is optional: read it only if the table has it.
        let probe = state
            .create_logical_plan(&format!("SELECT * FROM {}", self.table))
            .await?;
        let has_reason = probe
            .schema()
            .has_column_with_unqualified_name("reject_reason");
        let columns = INPUT_COLUMNS
            .map(|c| match c {
                "reject_reason" if !has_reason => {
                    "CAST(NULL AS VARCHAR) AS reject_reason".to_owned()
                }
                c => format!("\"{c}\""),
            })
            .join(", ");
        let sql = format!("SELECT {columns} FROM {}", self.table);
        let bad_input = |e: DataFusionError| {
            DataFusionError::Plan(format!(
                "resolve_identities: input table {} must have columns {} (and may have reject_reason): {e}",
                self.table,
                INPUT_COLUMNS[..5].join(", ")
            ))
        };
        // Checked whole either way; read whole only by a full run.
        let input = state.create_logical_plan(&sql).await.map_err(bad_input)?;
        let increment = self.increment(state);
        let mut inputs = vec![match &increment {
            Some(inc) => {
                self.occurrences_in(state, &inc.new_files, has_reason)
                    .await?
            }
            None => state.create_physical_plan(&input).await?,
        }];
        if let Some(rules) = &self.rules_table {
            let columns = RULE_COLUMNS.map(|c| format!("\"{c}\"")).join(", ");
            inputs.push(
                plan_input(state, &format!("SELECT {columns} FROM {rules}"), |e| {
                    format!(
                        "resolve_identities: rules table {rules} must have columns {}: {e}",
                        RULE_COLUMNS.join(", ")
                    )
                })
                .await?,
            );
        }
        // The previous output, if there is one yet (not on a first run):
        // its profile ids and redirects. An incremental run reads all of
        // it itself, as it keeps most of its rows.
        let previous = match &self.previous_table {
            Some(name) if increment.is_none() && table_exists(state, name) => Some(
                plan_input(
                    state,
                    &format!(
                        "SELECT profile_id, id_type, id_value, status, reason, linked_value, first_seen_at \
                         FROM {name} WHERE status IN ('linked', 'redirect')"
                    ),
                    |e| format!("resolve_identities: previous output {name} cannot be read: {e}"),
                )
                .await?,
            ),
            _ => None,
        };
        let has_previous = previous.is_some();
        inputs.extend(previous);
        let history = match increment {
            Some(inc) => {
                let seen: Vec<String> = inc.seen_files.iter().map(|(p, _)| p.clone()).collect();
                inputs.push(self.occurrences_in(state, &seen, has_reason).await?);
                // Replacing its previous output, it may answer with a delta.
                let delta = state.config().get_extension::<DeltaTarget>().filter(|t| {
                    Some(&t.table) == self.previous_table.as_ref()
                        && t.base.version == inc.previous.version
                });
                if let Some(t) = &delta {
                    t.claim();
                }
                Some(History {
                    storage: self.catalog.storage().clone(),
                    table: self.table.clone(),
                    files: inc.seen_files,
                    previous: inc.previous,
                    delta,
                })
            }
            None => None,
        };
        let exec: Arc<dyn ExecutionPlan> = Arc::new(ResolveIdentitiesExec::new(
            inputs,
            self.rules_table.is_some(),
            has_previous,
            history,
        ));
        match projection {
            None => Ok(exec),
            Some(indices) => {
                let schema = output_schema();
                let exprs = indices.iter().map(|&i| {
                    let name = schema.field(i).name().clone();
                    (
                        Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                        name,
                    )
                });
                Ok(Arc::new(ProjectionExec::try_new(exprs, exec)?))
            }
        }
    }
}

fn table_exists(state: &SessionState, name: &str) -> bool {
    let reference = TableReference::from(name);
    state
        .schema_for_ref(reference.clone())
        .is_ok_and(|schema| schema.table_exist(reference.table()))
}

/// Collects its inputs (occurrences, then the rules and the previous output
/// when given), resolves identities, emits the result. Incremental: the
/// occurrences are the new ones, the previous output is whole, and the
/// earlier occurrences in scope are read through their index — or, when
/// they cannot be indexed, by the last input, which scans them all.
#[derive(Debug)]
pub struct ResolveIdentitiesExec {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    has_rules: bool,
    has_previous: bool,
    history: Option<History>,
    properties: Arc<PlanProperties>,
}

impl ResolveIdentitiesExec {
    fn new(
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        has_rules: bool,
        has_previous: bool,
        history: Option<History>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            inputs,
            has_rules,
            has_previous,
            history,
            properties,
        }
    }
}

impl DisplayAs for ResolveIdentitiesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ResolveIdentitiesExec: rules={}, previous={}, incremental={}",
            if self.has_rules { "table" } else { "builtin" },
            self.has_previous,
            self.history.is_some()
        )
    }
}

impl ExecutionPlan for ResolveIdentitiesExec {
    fn name(&self) -> &str {
        "ResolveIdentitiesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.inputs.len() {
            return plan_err!(
                "ResolveIdentitiesExec: expected {} inputs, got {}",
                self.inputs.len(),
                children.len()
            );
        }
        Ok(Arc::new(Self::new(
            children,
            self.has_rules,
            self.has_previous,
            self.history.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return plan_err!("ResolveIdentitiesExec has one partition, asked for {partition}");
        }
        let mut inputs = self.inputs.clone().into_iter();
        let occurrences = inputs.next();
        let rules_plan = if self.has_rules { inputs.next() } else { None };
        let previous_plan = if self.has_previous {
            inputs.next()
        } else {
            None
        };
        let seen_plan = inputs.next();
        let history = self.history.clone();
        let work = async move {
            let Some(occurrences) = occurrences else {
                return plan_err!("ResolveIdentitiesExec has no input");
            };
            let clock = std::time::Instant::now();
            let rules = match rules_plan {
                Some(plan) => Rules::from_batches(&collect(plan, Arc::clone(&context)).await?)?,
                None => Rules::builtin(),
            };
            let now = chrono::Utc::now().timestamp_micros();
            let reservation =
                MemoryConsumer::new("resolve_identities").register(context.memory_pool());
            let out = match (seen_plan, history) {
                (Some(seen), Some(history)) => {
                    let (storage, pointer) = (&history.storage, &history.previous);
                    let external = |e: crate::error::Error| DataFusionError::External(Box::new(e));
                    // A delta reads the previous rows it needs through the
                    // graph index; a whole output needs them all.
                    let mut previous = match &history.delta {
                        Some(_) => {
                            let keys = graph_index::load(storage, &pointer.name, pointer).await?;
                            let files = pointer.files.clone();
                            let mut previous = PreviousOutput::sparse(keys, files);
                            let blocked = previous.take_blocked();
                            let read = LiveRows::read_positions(storage, pointer, &blocked);
                            previous.add_read(read.await.map_err(external)?)?;
                            previous
                        }
                        None => PreviousOutput::new(
                            LiveRows::read(storage, pointer).await.map_err(external)?,
                        )?,
                    };
                    tracing::debug!(
                        seconds = clock.elapsed().as_secs_f64(),
                        rows = previous.rows(),
                        "resolve_identities previous output read"
                    );
                    let delta = collect(occurrences, Arc::clone(&context)).await?;
                    let mut scope = Scope::new(&previous, &delta)?;
                    let phase = |phase: &str| {
                        let seconds = clock.elapsed().as_secs_f64();
                        tracing::debug!(phase, seconds, "resolve_identities incremental");
                    };
                    phase("previous output and new occurrences read");
                    // Earlier occurrences in scope, read until the scope
                    // stops growing.
                    let mut kept = Vec::new();
                    let index =
                        OccurrenceIndex::load(&history.storage, &history.table, &history.files)
                            .await?;
                    phase(match index {
                        Some(_) => "occurrence index loaded",
                        None => "earlier occurrences not indexed: scanning them",
                    });
                    let index_memory = MemoryConsumer::new("resolve_identities index")
                        .register(context.memory_pool());
                    let mut seen = match index {
                        Some(mut index) => {
                            index_memory.try_grow(index.memory_size())?;
                            loop {
                                let picks =
                                    index.select(|id, group| scope.wants(id, group)).await?;
                                phase("earlier occurrences in scope selected");
                                if picks.is_empty() {
                                    break;
                                }
                                let fetched = index.read(picks).await?;
                                phase("earlier occurrences in scope read by index");
                                let grew = scope.widen(&previous, &fetched)?;
                                kept.extend(fetched);
                                if !grew {
                                    break;
                                }
                            }
                            None
                        }
                        None => Some(seen),
                    };
                    drop(index_memory);
                    while let Some(plan) = seen.take() {
                        kept.clear();
                        // A plan runs once; a reread runs a fresh copy.
                        let plan = reset_plan_states(plan)?;
                        seen = Some(Arc::clone(&plan));
                        let mut stream = execute_stream(plan, Arc::clone(&context))?;
                        while let Some(batch) = stream.next().await.transpose()? {
                            if let Some(k) = filter_kept(&batch, &scope.keep(&batch)?)? {
                                kept.push(k);
                            }
                        }
                        phase("earlier occurrences scanned");
                        if !scope.widen(&previous, &kept)? {
                            break;
                        }
                    }
                    if history.delta.is_some() {
                        let mut occurrences = delta.clone();
                        occurrences.extend(kept.iter().cloned());
                        let picks = previous.take_scope(&scope, &occurrences)?;
                        phase("previous rows in scope picked");
                        let read = LiveRows::read_positions(storage, pointer, &picks);
                        previous.add_read(read.await.map_err(external)?)?;
                        phase("previous rows in scope read");
                    }
                    let (previous_rows, used) = scope.previous(&previous)?;
                    phase("previous rows in scope taken");
                    let mut before = Previous::from_batches(&previous_rows, now)?;
                    before.used_elsewhere = used;
                    let mut batches = delta;
                    batches.extend(kept);
                    tracing::debug!(
                        seconds = clock.elapsed().as_secs_f64(),
                        components = scope.components(),
                        previous_rows = previous.rows(),
                        occurrences = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                        "resolve_identities incremental scope"
                    );
                    reserve(&reservation, &batches)?;
                    let batches = as_input(batches)?;
                    let resolved =
                        tokio::task::spawn_blocking(move || resolve(batches, &rules, &before))
                            .await
                            .map_err(|e| DataFusionError::External(Box::new(e)))??;
                    phase("resolved");
                    let merged = scope.merge(&previous, resolved)?;
                    let out = match &history.delta {
                        Some(target) => {
                            let (added, deleted) = merged.into_delta(&previous)?;
                            tracing::debug!(
                                deleted = deleted.values().map(|(_, d)| d.len()).sum::<usize>(),
                                added = added.iter().map(RecordBatch::num_rows).sum::<usize>(),
                                "resolve_identities delta"
                            );
                            target.deletes.put(deleted);
                            added
                        }
                        None => merged.into_output(&previous)?,
                    };
                    reservation.resize(out.iter().map(RecordBatch::get_array_memory_size).sum());
                    futures::stream::iter(out.into_iter().map(Ok)).boxed()
                }
                _ => {
                    let previous = match previous_plan {
                        Some(plan) => Previous::from_batches(
                            &collect(plan, Arc::clone(&context)).await?,
                            now,
                        )?,
                        None => Previous::empty(now),
                    };
                    tracing::debug!(
                        seconds = clock.elapsed().as_secs_f64(),
                        "resolve_identities previous read"
                    );
                    let batches = collect(occurrences, Arc::clone(&context)).await?;
                    tracing::debug!(
                        seconds = clock.elapsed().as_secs_f64(),
                        "resolve_identities input read"
                    );
                    reserve(&reservation, &batches)?;
                    let batches = as_input(batches)?;
                    // The output streams out as the resolver builds it.
                    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
                    let work = tokio::task::spawn_blocking(move || {
                        let sink = |batch| {
                            tx.blocking_send(Ok(batch)).map_err(|_| {
                                DataFusionError::Execution(
                                    "resolve_identities: its output is no longer read".into(),
                                )
                            })
                        };
                        if let Err(e) = resolve_into(batches, &rules, &previous, &sink) {
                            let _ = tx.blocking_send(Err(e));
                        }
                    });
                    let batches = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|item| (item, rx))
                    });
                    // A panic ends the channel: report it rather than a
                    // short output.
                    let ended = futures::stream::once(work).filter_map(|joined| async move {
                        joined
                            .err()
                            .map(|e| Err(DataFusionError::External(Box::new(e))))
                    });
                    batches.chain(ended).boxed()
                }
            };
            // The memory stays reserved until the stream is dropped.
            Ok::<_, DataFusionError>(out.map(move |chunk| {
                let _held = &reservation;
                chunk
            }))
        };
        let stream = futures::stream::once(work)
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            output_schema(),
            stream,
        )))
    }
}

/// Reserves the resolver's input and working memory, or fails saying how
/// much it needs.
fn reserve(reservation: &MemoryReservation, batches: &[RecordBatch]) -> Result<()> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let input: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let need = input + memory_estimate(rows);
    reservation.try_grow(need).map_err(|e| {
        DataFusionError::ResourcesExhausted(format!(
            "resolve_identities needs about {} MiB for {rows} identifier occurrences \
             ({} MiB of input), more than the memory limit leaves \
             (--memory-limit / PROFILEDB_MEMORY_LIMIT): {e}",
            need >> 20,
            input >> 20
        ))
    })
}

/// The batches with the resolver's input types; text views are kept as
/// they are (see `identity::graph::Text`). Takes the batches, so the
/// resolver holds the only reference to their columns and can drop them.
fn as_input(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let target = input_schema();
    batches
        .into_iter()
        .map(|b| {
            let columns = target
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| match c.data_type() {
                    DataType::Utf8View => Ok(Arc::clone(c)),
                    _ => cast(c, f.data_type()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let fields: Vec<_> = target
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
                .collect();
            Ok(RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?)
        })
        .collect()
}
