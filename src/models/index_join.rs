//! Index joins for merges. A merge joins small sets of rows (a table's
//! changes, the keys it recomputes) with the whole of big tables; the
//! biggest, the identifier occurrences `resolve_identities` reads
//! (`identifiers`), has an index: each row's identifier hash and row hash
//! ([`OccurrenceIndex`]). So a hash join whose probe side scans such a
//! table on `(id_type, id_value)` or on `(source, row_key)` reads only the
//! rows whose hash one of the build side's keys has, instead of decoding
//! every occurrence.
//!
//! [`index_joins`] keeps the plan's shape: the join's build side is
//! collected once and shared ([`SharedExec`]) between the join and the
//! probe side's scan, which becomes an [`IndexScanExec`]. That reads the
//! picked rows (a hash collision only picks a row too many: the join still
//! compares the values) — or, when the keys pick too many rows for the
//! index to pay (more than [`MAX_SHARE`]), runs the original scan. Only joins that drop the
//! probe rows nothing matches qualify (inner, semi and anti joins keeping
//! the build side, left joins), and only scans of whole files (no deleted
//! rows, no limit) whose columns the index can read.
//!
//! A join on all the columns of a declared index (see
//! [`super::column_index`]) is read through it the same way, from either
//! side: the side scanning the indexed table reads only the rows the other
//! side's keys pick ([`super::index_scan`]), when its unmatched rows do not
//! reach the output (for the build side: inner, semi, right and right anti
//! joins). The other side is then collected first, and shared.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, collect_partitioned,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use super::index_scan::{ColumnIndexed, IndexedScanExec, Keys, scanned_paths};
use super::occurrence_lookups::{Lookup, OccurrenceLookups};
use crate::catalog::Catalog;
use crate::error::Result as AppResult;
use crate::identity::graph::Text;
use crate::identity::hash_filter::HashFilter;
use crate::identity::resolve::{INPUT_COLUMNS, identifier_hash};
use crate::storage::{Storage, layout};
use crate::udf::occurrence_index::{Hash, OccurrenceIndex};

/// The index pays while the rows it picks are at most this share of the
/// table's.
const MAX_SHARE: f64 = 0.05;

/// The tables with an occurrence index, and their files; and the tables
/// with declared column indexes (see [`super::column_index`]).
#[derive(Debug, Clone)]
pub struct IndexedTables {
    storage: Storage,
    tables: Vec<(String, Vec<(String, u64)>)>,
    columns: Vec<ColumnIndexed>,
    /// Occurrence-index lookups shared with the run's other builds.
    lookups: Arc<OccurrenceLookups>,
}

impl IndexedTables {
    /// Those tables whose index `resolve_identities` keeps and that have
    /// no deleted rows, and the tables of `declared` (table → the column
    /// lists of its indexes) as they are now.
    pub async fn find(
        catalog: &Catalog,
        storage: &Storage,
        declared: &BTreeMap<String, Vec<Vec<String>>>,
    ) -> AppResult<Self> {
        let mut tables = Vec::new();
        let names = storage.list_dirs(&layout::occurrence_index_root()).await?;
        for name in names {
            if let Some(files) = catalog.input_files(&name)
                && files.version.is_some()
                && files.deleted.is_empty()
            {
                tables.push((name, files.files));
            }
        }
        let mut columns = Vec::new();
        for (name, indexes) in declared {
            if let Some(files) = catalog.input_files(name)
                && files.version.is_some()
                && !indexes.is_empty()
            {
                columns.push(ColumnIndexed::new(
                    name.clone(),
                    files.files.into_iter().map(|(p, _)| p).collect(),
                    indexes.clone(),
                ));
            }
        }
        Ok(Self {
            storage: storage.clone(),
            tables,
            columns,
            lookups: Arc::default(),
        })
    }

    /// These tables, sharing occurrence-index lookups through `lookups`.
    pub fn sharing(self, lookups: Arc<OccurrenceLookups>) -> Self {
        Self { lookups, ..self }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn column_indexed(&self) -> &[ColumnIndexed] {
        &self.columns
    }

    /// The table with column indexes whose files `paths` are among.
    pub fn column_table(&self, paths: &[String]) -> Option<&ColumnIndexed> {
        if paths.is_empty() {
            return None;
        }
        self.columns
            .iter()
            .find(|t| paths.iter().all(|p| t.files.contains(p)))
    }

    /// The table whose files `paths` are among.
    fn table_of(&self, paths: &[String]) -> Option<Found> {
        self.tables.iter().find_map(|(name, files)| {
            let scanned: Vec<(String, u64)> = paths
                .iter()
                .map(|p| files.iter().find(|(f, _)| f == p).cloned())
                .collect::<Option<_>>()?;
            (!scanned.is_empty()).then(|| Found {
                table: name.clone(),
                table_files: files.clone(),
                scanned,
            })
        })
    }
}

/// An indexed table a scan reads: its name, its files, and the recorded
/// `(path, size)` of the files the scan reads.
struct Found {
    table: String,
    table_files: Vec<(String, u64)>,
    scanned: Vec<(String, u64)>,
}

/// `plan` with every qualifying hash join's probe-side scan read through
/// the occurrence index (see the module docs).
pub fn index_joins(
    plan: Arc<dyn ExecutionPlan>,
    indexed: &IndexedTables,
) -> Result<Arc<dyn ExecutionPlan>> {
    let storage = &indexed.storage;
    if indexed.tables.is_empty() && indexed.columns.is_empty() {
        return Ok(plan);
    }
    Ok(plan
        .transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if join.null_equality() != NullEquality::NullEqualsNothing {
                return Ok(Transformed::no(node));
            }
            // Which side's rows that match no key of the other side's can
            // be left unread: the probe (right) side's, or the build's.
            let right_prunable = matches!(
                join.join_type(),
                JoinType::Inner
                    | JoinType::Left
                    | JoinType::LeftSemi
                    | JoinType::LeftAnti
                    | JoinType::LeftMark
                    | JoinType::RightSemi
            );
            let left_prunable = matches!(
                join.join_type(),
                JoinType::Inner
                    | JoinType::Right
                    | JoinType::LeftSemi
                    | JoinType::RightSemi
                    | JoinType::RightAnti
                    | JoinType::RightMark
            );
            if !right_prunable && !left_prunable {
                return Ok(Transformed::no(node));
            }
            let right_keys = || join.on().iter().map(|(l, r)| (r, l));
            if right_prunable
                && let Some(lookup) = column_lookup(join.right(), right_keys(), indexed)
            {
                let shared = Arc::new(SharedExec::new(Arc::clone(join.left())));
                let scan = lookup.scan(&shared, storage);
                let right = replace_leaf(join.right(), &scan)?;
                let joined = replace_children_if_necessary(Arc::clone(&node), vec![shared, right])?;
                return Ok(Transformed::yes(joined));
            }
            let left_keys = || join.on().iter().map(|(l, r)| (l, r));
            if left_prunable && let Some(lookup) = column_lookup(join.left(), left_keys(), indexed)
            {
                let shared = Arc::new(SharedExec::new(Arc::clone(join.right())));
                let scan = lookup.scan(&shared, storage);
                let left = replace_leaf(join.left(), &scan)?;
                let joined = replace_children_if_necessary(Arc::clone(&node), vec![left, shared])?;
                return Ok(Transformed::yes(joined));
            }
            if !right_prunable {
                return Ok(Transformed::no(node));
            }
            let Some(probe) = probe_scan(join, indexed, storage) else {
                return Ok(Transformed::no(node));
            };
            let shared = Arc::new(SharedExec::new(Arc::clone(join.left())));
            let scan = Arc::new(IndexScanExec {
                scan: Arc::new(IndexScan {
                    shared: Arc::clone(&shared),
                    keys: probe.keys,
                    by: probe.by,
                    table: probe.table,
                    table_files: probe.table_files,
                    files: probe.files,
                    original: Arc::clone(&probe.scan),
                    storage: storage.clone(),
                    lookups: Arc::clone(&indexed.lookups),
                    picked: OnceCell::new(),
                }),
            });
            let right = replace_leaf(join.right(), &(scan as Arc<dyn ExecutionPlan>))?;
            let joined = replace_children_if_necessary(Arc::clone(&node), vec![shared, right])?;
            Ok(Transformed::yes(joined))
        })?
        .data)
}

/// A join side's scan of a table with a column index that the side's join
/// keys cover, and the other side's key expressions for the index's
/// columns.
struct ColumnLookup {
    scan: Arc<dyn ExecutionPlan>,
    table: ColumnIndexed,
    columns: Vec<String>,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    types: Vec<DataType>,
}

impl ColumnLookup {
    /// The scan, reading the rows whose keys `shared` (the other side) has.
    fn scan(self, shared: &Arc<SharedExec>, storage: &Storage) -> Arc<dyn ExecutionPlan> {
        let keys = Keys::Rows {
            shared: Arc::clone(shared),
            exprs: self.exprs,
            types: self.types,
        };
        Arc::new(IndexedScanExec::new(
            self.scan,
            self.table,
            self.columns,
            keys,
            storage.clone(),
        ))
    }
}

/// `keys`: the join's `(this side's, other side's)` key expressions.
fn column_lookup<'a>(
    side: &Arc<dyn ExecutionPlan>,
    keys: impl Iterator<Item = (&'a Arc<dyn PhysicalExpr>, &'a Arc<dyn PhysicalExpr>)>,
    indexed: &IndexedTables,
) -> Option<ColumnLookup> {
    let mut leaf: Option<Arc<dyn ExecutionPlan>> = None;
    let mut names = Vec::new();
    for (mine, other) in keys {
        let Some(column) = mine.downcast_ref::<Column>() else {
            continue;
        };
        let Some((scan, at)) = trace(side, column.index()) else {
            continue;
        };
        if leaf.as_ref().is_some_and(|l| !Arc::ptr_eq(l, &scan)) {
            continue;
        }
        names.push((scan.schema().field(at).clone(), Arc::clone(other)));
        leaf = Some(scan);
    }
    let scan = leaf?;
    let paths = scanned_paths(&scan, &indexed.storage)?;
    let table = indexed.column_table(&paths)?;
    table.indexes.iter().find_map(|columns| {
        let found: Vec<_> = columns
            .iter()
            .map(|c| names.iter().find(|(f, _)| f.name() == c))
            .collect::<Option<_>>()?;
        Some(ColumnLookup {
            scan: Arc::clone(&scan),
            table: table.clone(),
            columns: columns.clone(),
            exprs: found.iter().map(|(_, e)| Arc::clone(e)).collect(),
            types: found.iter().map(|(f, _)| f.data_type().clone()).collect(),
        })
    })
}

/// Which hash a probe row is picked by.
#[derive(Debug, Clone, Copy)]
enum By {
    /// `identifier_hash(id_type, id_value)`.
    Identifier,
    /// `identifier_hash(source, row_key)`.
    Row,
}

/// A join's probe-side scan of an indexed table, and the build side's
/// expressions that give the indexed columns.
struct Probe {
    scan: Arc<dyn ExecutionPlan>,
    keys: [Arc<dyn PhysicalExpr>; 2],
    by: By,
    table: String,
    table_files: Vec<(String, u64)>,
    files: Vec<(String, u64)>,
}

fn probe_scan(join: &HashJoinExec, indexed: &IndexedTables, storage: &Storage) -> Option<Probe> {
    // The probe side's leaf, and the leaf column each join key reads.
    let mut names = Vec::new();
    let mut leaf = None;
    for (build, probe) in join.on() {
        let column = probe.downcast_ref::<Column>()?;
        let (scan, index) = trace(join.right(), column.index())?;
        names.push((Arc::clone(build), scan.schema().field(index).name().clone()));
        leaf = Some(scan);
    }
    let scan = leaf?;
    let paths = scanned_paths(&scan, storage)?;
    // The occurrence index reads the rows itself: whole files only, no
    // row selection (of deleted rows) to honour.
    let exec = scan.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    if config
        .file_groups
        .iter()
        .flat_map(|g| g.files())
        .any(|f| !f.extensions.is_empty())
    {
        return None;
    }
    // The index reads the resolver's input columns, and nothing else.
    if scan
        .schema()
        .fields()
        .iter()
        .any(|f| !INPUT_COLUMNS.contains(&f.name().as_str()))
    {
        return None;
    }
    let Found {
        table,
        table_files,
        scanned: files,
    } = indexed.table_of(&paths)?;
    let key = |name: &str| {
        names
            .iter()
            .find(|(_, n)| n == name)
            .map(|(e, _)| Arc::clone(e))
    };
    let (keys, by) = match (
        key("id_type"),
        key("id_value"),
        key("source"),
        key("row_key"),
    ) {
        (Some(t), Some(v), _, _) => ([t, v], By::Identifier),
        (_, _, Some(s), Some(r)) => ([s, r], By::Row),
        _ => return None,
    };
    Some(Probe {
        scan,
        keys,
        by,
        table,
        table_files,
        files,
    })
}

/// Follows column `index` of `plan`'s output down to the scan it comes
/// from, through operators that pass every row's columns on (a sort
/// without a limit, a filter, a projection of the column, a repartition):
/// the scan and its column.
pub(super) fn trace(
    plan: &Arc<dyn ExecutionPlan>,
    index: usize,
) -> Option<(Arc<dyn ExecutionPlan>, usize)> {
    if plan.is::<DataSourceExec>() {
        return Some((Arc::clone(plan), index));
    }
    let whole_sort = plan
        .downcast_ref::<SortExec>()
        .is_some_and(|sort| sort.fetch().is_none());
    if plan.is::<RepartitionExec>() || whole_sort {
        return trace(plan.children()[0], index);
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let index = match filter.projection() {
            Some(projection) => *projection.get(index)?,
            None => index,
        };
        return trace(filter.input(), index);
    }
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let expr = &projection.expr().get(index)?.expr;
        let column = expr.downcast_ref::<Column>()?;
        return trace(projection.input(), column.index());
    }
    None
}

/// `plan` with its one leaf (see [`trace`]) replaced by `leaf`.
pub(super) fn replace_leaf(
    plan: &Arc<dyn ExecutionPlan>,
    leaf: &Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.is::<DataSourceExec>() {
        return Ok(Arc::clone(leaf));
    }
    let child = replace_leaf(plan.children()[0], leaf)?;
    replace_children_if_necessary(Arc::clone(plan), vec![child])
}

type Partitions = Arc<Vec<Vec<RecordBatch>>>;

/// The rows an index scan picked; None: the original scan runs.
type Picked = Option<Arc<Vec<RecordBatch>>>;

/// A result computed once and handed to every reader.
type Once<T> = OnceCell<std::result::Result<T, Arc<DataFusionError>>>;

/// Its input, collected once and handed out to every reader, partition by
/// partition: the build side, which the join and the index scan both read.
pub struct SharedExec {
    input: Arc<dyn ExecutionPlan>,
    batches: Arc<Once<Partitions>>,
}

impl SharedExec {
    pub(super) fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            input,
            batches: Arc::new(OnceCell::new()),
        }
    }

    /// Every partition of the input, collected by the first reader.
    pub(super) fn batches(
        &self,
        context: Arc<TaskContext>,
    ) -> impl Future<Output = Result<Partitions>> + Send + 'static {
        let (input, cell) = (Arc::clone(&self.input), Arc::clone(&self.batches));
        async move {
            cell.get_or_init(|| async {
                collect_partitioned(input, context)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(DataFusionError::Shared)
        }
    }
}

impl fmt::Debug for SharedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedExec")
    }
}

impl DisplayAs for SharedExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("SharedExec")
    }
}

impl ExecutionPlan for SharedExec {
    fn name(&self) -> &str {
        "SharedExec"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("SharedExec has one input".into()))?;
        Ok(Arc::new(Self::new(input)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batches = self.batches(context);
        let stream = futures::stream::once(async move {
            let batches = batches.await?;
            let mine = batches.get(partition).cloned().unwrap_or_default();
            Ok::<_, DataFusionError>(futures::stream::iter(mine.into_iter().map(Ok)))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

/// A scan of an indexed table that reads only the rows the build side's
/// keys pick (all in its first partition), or the original scan.
pub struct IndexScanExec {
    scan: Arc<IndexScan>,
}

struct IndexScan {
    shared: Arc<SharedExec>,
    keys: [Arc<dyn PhysicalExpr>; 2],
    by: By,
    table: String,
    /// The table's files, and those of them the scan reads.
    table_files: Vec<(String, u64)>,
    files: Vec<(String, u64)>,
    original: Arc<dyn ExecutionPlan>,
    storage: Storage,
    lookups: Arc<OccurrenceLookups>,
    picked: Once<Picked>,
}

impl IndexScan {
    async fn picked(&self, context: Arc<TaskContext>) -> Result<Picked> {
        self.picked
            .get_or_init(|| async {
                self.pick(context)
                    .await
                    .map(|rows| rows.map(Arc::new))
                    .map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(DataFusionError::Shared)
    }

    async fn pick(&self, context: Arc<TaskContext>) -> Result<Option<Vec<RecordBatch>>> {
        let clock = std::time::Instant::now();
        let build = self.shared.batches(context).await?;
        let built = clock.elapsed().as_secs_f64();
        let mut hashes = HashFilter::default();
        for batch in build.iter().flatten() {
            let columns = self
                .keys
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let (Ok(first), Ok(second)) = (Text::of(&columns[0]), Text::of(&columns[1])) else {
                return Ok(None);
            };
            for r in 0..batch.num_rows() {
                if !first.is_null(r) && !second.is_null(r) {
                    hashes.insert(identifier_hash(first.value(r), second.value(r)));
                }
            }
        }
        let hash = match self.by {
            By::Identifier => Hash::Identifier,
            By::Row => Hash::Group,
        };
        let mut keys: Vec<u64> = hashes.iter().collect();
        keys.sort_unstable();
        let lookup = Lookup {
            table: self.table.clone(),
            hash,
            files: self.files.clone(),
            keys,
        };
        if let Some(found) = self.lookups.get(&lookup) {
            tracing::debug!(
                table = self.table,
                keys = hashes.len(),
                rows = found
                    .as_ref()
                    .map(|b| b.iter().map(RecordBatch::num_rows).sum::<usize>()),
                seconds = clock.elapsed().as_secs_f64(),
                "index join: rows found by an earlier build's equal lookup"
            );
            return found.map(|rows| self.as_scanned(&rows)).transpose();
        }
        // Loaded for all the table's files (the load removes the indexes
        // of files it is not given), picked from the scanned ones.
        let Some(index) =
            OccurrenceIndex::load(&self.storage, &self.table, &self.table_files).await?
        else {
            return Ok(None);
        };
        let loaded = clock.elapsed().as_secs_f64();
        let most = (index.rows() as f64 * MAX_SHARE) as usize;
        let picks: Vec<_> = index
            .find(hash, |h| hashes.contains(h))
            .await?
            .into_iter()
            .filter(|(f, _)| self.files.iter().any(|(p, _)| p == index.path(*f)))
            .collect();
        let found = clock.elapsed().as_secs_f64();
        let picked: usize = picks
            .iter()
            .flat_map(|(_, ranges)| ranges.iter().map(|r| r.len()))
            .sum();
        if picked > most {
            self.lookups.put(lookup, None);
            return Ok(None);
        }
        let rows = Arc::new(index.read(picks).await?);
        self.lookups.put(lookup, Some(Arc::clone(&rows)));
        tracing::debug!(
            table = self.table,
            keys = hashes.len(),
            rows = picked,
            built,
            loaded,
            found,
            read = clock.elapsed().as_secs_f64(),
            "index join: rows picked"
        );
        self.as_scanned(&rows).map(Some)
    }

    /// Rows read from the occurrence files, in the scan's columns.
    fn as_scanned(&self, rows: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
        let schema = self.original.schema();
        rows.iter()
            .map(|batch| {
                let columns = schema
                    .fields()
                    .iter()
                    .map(|field| {
                        let column = batch.column_by_name(field.name()).ok_or_else(|| {
                            DataFusionError::Internal(format!(
                                "the occurrence index read no column {}",
                                field.name()
                            ))
                        })?;
                        Ok(cast(column, field.data_type())?)
                    })
                    .collect::<Result<Vec<ArrayRef>>>()?;
                Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
            })
            .collect::<Result<Vec<_>>>()
    }
}

impl fmt::Debug for IndexScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexScanExec({})", self.scan.table)
    }
}

impl DisplayAs for IndexScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "IndexScanExec: table={}, by={:?}",
            self.scan.table, self.scan.by
        )
    }
}

impl ExecutionPlan for IndexScanExec {
    fn name(&self) -> &str {
        "IndexScanExec"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.scan.original.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        // The shared build side is the join's child, not this scan's.
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let this = Arc::clone(&self.scan);
        let schema = self.schema();
        let stream = futures::stream::once(async move {
            let stream: SendableRecordBatchStream = match this.picked(Arc::clone(&context)).await? {
                None => this.original.execute(partition, context)?,
                Some(rows) => {
                    let mine = if partition == 0 {
                        rows.as_ref().clone()
                    } else {
                        Vec::new()
                    };
                    Box::pin(RecordBatchStreamAdapter::new(
                        schema,
                        futures::stream::iter(mine.into_iter().map(Ok)),
                    ))
                }
            };
            Ok::<_, DataFusionError>(stream)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream.boxed(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    use super::*;
    use crate::identity::resolve::input_schema;

    const ROWS: usize = 4000;

    /// An occurrence table of one file: row r is `(events, m<r/2>, r,
    /// cookie, v<r>)`, and its index; a session reading it as `occ`.
    async fn indexed() -> (tempfile::TempDir, SessionContext, IndexedTables) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..ROWS).map(f)))
        };
        let columns = vec![
            text(&|_| "events".into()),
            text(&|r| format!("m{}", r / 2)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(0..ROWS as i64).with_timezone("UTC"),
            ) as ArrayRef,
            text(&|_| "cookie".into()),
            text(&|r| format!("v{r}")),
            text(&|_| String::new()),
        ];
        let batch = RecordBatch::try_new(input_schema(), columns).unwrap();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let path = "data/public/occ/v1/part-00000.parquet";
        storage.put_bytes(path, bytes.into()).await.unwrap();
        let files = vec![(path.to_owned(), 0)];
        OccurrenceIndex::load(&storage, "occ", &files)
            .await
            .unwrap()
            .expect("the file has the resolver's columns");
        let ctx = SessionContext::new();
        let url = storage.listing_url("data/public/occ/v1/").unwrap();
        ctx.register_parquet("occ", url.as_str(), ParquetReadOptions::default())
            .await
            .unwrap();
        let indexed = IndexedTables {
            storage,
            tables: vec![("occ".into(), files)],
            columns: Vec::new(),
            lookups: Arc::default(),
        };
        (dir, ctx, indexed)
    }

    /// `sql` run as planned and with index joins: the two results, and
    /// whether the index scan read picked rows (None: no index scan).
    async fn both(
        ctx: &SessionContext,
        indexed: &IndexedTables,
        sql: &str,
    ) -> (String, String, Option<bool>) {
        let plan = || async {
            ctx.sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap()
        };
        let task = ctx.task_ctx();
        let plain = collect(plan().await, Arc::clone(&task)).await.unwrap();
        let rewritten = index_joins(plan().await, indexed).unwrap();
        let shown = displayable(rewritten.as_ref()).indent(false).to_string();
        let rows = collect(Arc::clone(&rewritten), task).await.unwrap();
        let mut picked = None;
        rewritten
            .apply(|node| {
                if let Some(scan) = node.downcast_ref::<IndexScanExec>() {
                    picked = Some(matches!(scan.scan.picked.get(), Some(Ok(Some(_)))));
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(picked.is_some(), shown.contains("IndexScanExec"), "{shown}");
        let text = |b: &[RecordBatch]| pretty_format_batches(b).unwrap().to_string();
        (text(&plain), text(&rows), picked)
    }

    fn keys(ctx: &SessionContext, rows: Vec<(String, String)>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let (a, b): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(a)) as ArrayRef,
                Arc::new(StringArray::from(b)),
            ],
        )
        .unwrap();
        let _ = ctx.deregister_table("k");
        ctx.register_table(
            "k",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_small_build_side_reads_only_the_rows_its_keys_pick() {
        let (_dir, ctx, indexed) = indexed().await;
        // By identifier: v3 and v10 (rows 3 and 10), and one not there.
        keys(
            &ctx,
            ["v3", "v10", "v99999"]
                .map(|v| ("cookie".to_owned(), v.to_owned()))
                .into(),
        );
        let sql = "SELECT o.row_key, o.id_value, o.ts FROM k JOIN occ o \
                   ON o.id_type = k.a AND o.id_value = k.b ORDER BY 1, 2";
        let (plain, indexed_rows, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, Some(true));
        assert_eq!(plain, indexed_rows);
        assert!(plain.contains("| m5") && plain.contains("| m1 "), "{plain}");
        // By row: the group of rows 4 and 5, semi-joined.
        keys(&ctx, vec![("events".into(), "m2".into())]);
        let sql = "SELECT o.id_value FROM occ o WHERE EXISTS \
                   (SELECT 1 FROM k WHERE k.a = o.source AND k.b = o.row_key) ORDER BY 1";
        let (plain, indexed_rows, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, Some(true));
        assert_eq!(plain, indexed_rows);
        assert!(
            plain.contains("| v4 ") && plain.contains("| v5 "),
            "{plain}"
        );
    }

    #[tokio::test]
    async fn a_later_equal_lookup_takes_the_rows_found_before() {
        let (_dir, ctx, indexed) = indexed().await;
        keys(
            &ctx,
            ["v3", "v10"]
                .map(|v| ("cookie".to_owned(), v.to_owned()))
                .into(),
        );
        let sql = "SELECT o.row_key, o.id_value FROM k JOIN occ o \
                   ON o.id_type = k.a AND o.id_value = k.b ORDER BY 1, 2";
        let (plain, first, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, Some(true));
        assert_eq!(plain, first);
        // With the index gone, an equal lookup neither loads nor rebuilds it.
        let dir = layout::occurrence_index_dir("occ");
        let storage = indexed.storage();
        for (rel, _) in storage.list(&dir).await.unwrap() {
            storage.delete(&rel).await.unwrap();
        }
        let (_, again, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, Some(true));
        assert_eq!(again, first);
        assert!(storage.list(&dir).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_large_build_side_or_other_join_scans_as_planned() {
        let (_dir, ctx, indexed) = indexed().await;
        // A tenth of the rows' identifiers: past the share the index pays.
        keys(
            &ctx,
            (0..ROWS / 10)
                .map(|r| ("cookie".to_owned(), format!("v{}", r * 10)))
                .collect(),
        );
        let sql = "SELECT count(*) FROM k JOIN occ o ON o.id_type = k.a AND o.id_value = k.b";
        let (plain, indexed_rows, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, Some(false));
        assert_eq!(plain, indexed_rows);
        assert!(plain.contains("| 400 "), "{plain}");
        // A join on other columns is left as it is.
        let sql = "SELECT count(*) FROM k JOIN occ o ON o.ts IS NOT NULL AND o.id_value = k.b";
        let (plain, indexed_rows, picked) = both(&ctx, &indexed, sql).await;
        assert_eq!(picked, None);
        assert_eq!(plain, indexed_rows);
    }
}
