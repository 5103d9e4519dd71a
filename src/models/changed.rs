//! What changed in a model's input since its current version was built,
//! and the model's query over those changes: what a merge by `unique_key`
//! ([`super::merge::merge_changes`]) reads instead of everything.
//!
//! A model's version records the files of every relation it read
//! (`TablePointer::inputs`). Views are planned into the model's query
//! first ([`inline_views`]), so what is recorded and compared are the raw
//! sources and tables below them. Since that version:
//!
//! - a **raw source** may have new files (its old ones must be as they
//!   were: the landing zone is appended to);
//! - a **table** may have a new version: its inserted and deleted rows are
//!   read through the storage's change data ([`crate::storage::changes`]).
//!
//! Anything else (a source rewritten, a table whose changes cannot be told
//! or are too large, a relation the version did not record) means the
//! model is rebuilt whole, and [`changed`] says why.
//!
//! [`Changed::over`] is the model's query with one changed input replaced
//! by its changes and every other input as it is now: the rows that input
//! reaches. For finding the keys a change touches, an outer join whose
//! preserved side holds no change becomes an inner join (its unmatched
//! rows do not depend on the change), and an anti join against a change
//! becomes a semi join (the rows whose match appeared or vanished).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
    SubqueryAlias, Window,
};
use datafusion::optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
use datafusion::optimizer::{OptimizerContext, OptimizerRule};

use crate::catalog::scan_files::ScanFiles;
use crate::catalog::views::ViewProvider;
use crate::catalog::{DEFAULT_SCHEMA, RelationKind};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::changes::{Changes, changes_since};
use crate::storage::publish::TablePointer;

/// A table's changes larger than this share of its rows are not read as
/// changes: the model is rebuilt from the whole table instead.
const MAX_CHANGED_SHARE: f64 = 0.25;

/// How deep views may read views.
const MAX_VIEW_DEPTH: usize = 32;

/// One input that changed since the model's version.
pub enum Change {
    /// Files that arrived in a raw source, as a provider of them alone.
    Source {
        name: String,
        new_files: Arc<dyn TableProvider>,
    },
    /// Rows inserted into and deleted from a table.
    Table { name: String, changes: Changes },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Source { name, .. } | Change::Table { name, .. } => name,
        }
    }
}

/// Which of a change's rows a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// New files, inserted rows and deleted rows alike.
    All,
    Inserted,
    Deleted,
}

/// The model's query (views planned in) and what changed below it.
pub struct Changed {
    pub plan: LogicalPlan,
    pub inputs: Vec<Change>,
}

/// What changed below `plan` since `current` was built; `Err(reason)`
/// when the model has to be rebuilt whole.
pub async fn changed(
    engine: &Arc<Engine>,
    state: &SessionState,
    plan: LogicalPlan,
    current: &TablePointer,
) -> Result<std::result::Result<Changed, String>> {
    let plan = inline_views(state, plan).await?;
    let catalog = engine.catalog();
    let snapshot = catalog.snapshot();
    let mut inputs = Vec::new();
    for (schema, name) in scanned(&plan) {
        let Some(relation) = snapshot.relation(&schema, &name) else {
            return Ok(Err(format!(
                "it reads {name}, which the catalog does not know"
            )));
        };
        let recorded = current
            .inputs
            .get(&name)
            .filter(|_| schema == DEFAULT_SCHEMA);
        let Some(recorded) = recorded else {
            return Ok(Err(format!("its last version did not record {name}")));
        };
        match relation.kind {
            RelationKind::Source => {
                let Some(now) = catalog.input_files(&name) else {
                    return Ok(Err(format!("raw source {name} cannot be listed")));
                };
                let Some(new) = recorded.appended(&now) else {
                    return Ok(Err(format!(
                        "raw source {name} was rewritten, not appended to"
                    )));
                };
                if new.is_empty() {
                    continue;
                }
                let subset = ScanFiles::subset(
                    crate::catalog::resident::file_provider(&relation.provider),
                    engine.storage(),
                    new.iter().map(|(path, _)| path),
                );
                inputs.push(Change::Source {
                    name,
                    new_files: Arc::new(subset),
                });
            }
            RelationKind::Table => {
                let Some(pointer) = &relation.pointer else {
                    return Ok(Err(format!("table {name} has no version")));
                };
                let max_rows = (pointer.rows as f64 * MAX_CHANGED_SHARE) as u64;
                match changes_since(engine.storage(), recorded, pointer, max_rows).await? {
                    Some(changes) if changes.is_empty() => {}
                    Some(changes) => inputs.push(Change::Table { name, changes }),
                    None => {
                        return Ok(Err(format!(
                            "the changes of table {name} since the last run cannot be read \
                             (it was rewritten, or they exceed a quarter of its rows)"
                        )));
                    }
                }
            }
            RelationKind::View | RelationKind::System => {
                return Ok(Err(format!("it reads {name}, whose changes are not known")));
            }
        }
    }
    Ok(Ok(Changed { plan, inputs }))
}

impl Changed {
    /// The query with `input` read from its changes (the rows of `side`)
    /// and everything else as it is now; with [`Side::All`], joins that
    /// would keep rows the change does not reach read only those it does
    /// (see the module docs).
    pub fn over(&self, input: &Change, side: Side) -> Result<LogicalPlan> {
        let replaced = self
            .plan
            .clone()
            .transform_up_with_subqueries(|node| {
                let LogicalPlan::TableScan(mut scan) = node else {
                    return Ok(Transformed::no(node));
                };
                if !is_input(&scan.table_name, input.name()) {
                    return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
                }
                let provider: Arc<dyn TableProvider> = match input {
                    Change::Source { new_files, .. } => Arc::clone(new_files),
                    Change::Table { changes, .. } => {
                        let schema = source_as_provider(&scan.source)?.schema();
                        let pick = |batches: &[RecordBatch]| -> datafusion::error::Result<Vec<RecordBatch>> {
                            batches
                                .iter()
                                .map(|b| {
                                    RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())
                                        .map_err(DataFusionError::from)
                                })
                                .collect()
                        };
                        let mut rows = Vec::new();
                        if side != Side::Deleted {
                            rows.extend(pick(&changes.inserted)?);
                        }
                        if side != Side::Inserted {
                            rows.extend(pick(&changes.deleted)?);
                        }
                        Arc::new(MemTable::try_new(schema, vec![rows])?)
                    }
                };
                scan.source = provider_as_source(provider);
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            })?
            .data;
        if side != Side::All {
            return Ok(replaced);
        }
        Ok(replaced
            .transform_up(|node| {
                let LogicalPlan::Join(join) = node else {
                    return Ok(Transformed::no(node));
                };
                let left = reads(&join.left, input.name());
                let right = reads(&join.right, input.name());
                let narrowed = match join.join_type {
                    JoinType::Left if right && !left => Some(JoinType::Inner),
                    JoinType::Right if left && !right => Some(JoinType::Inner),
                    JoinType::Full if left && !right => Some(JoinType::Left),
                    JoinType::Full if right && !left => Some(JoinType::Right),
                    JoinType::LeftAnti if right && !left => Some(JoinType::LeftSemi),
                    JoinType::RightAnti if left && !right => Some(JoinType::RightSemi),
                    _ => None,
                };
                let Some(join_type) = narrowed else {
                    return Ok(Transformed::no(LogicalPlan::Join(join)));
                };
                let join = Join::try_new(
                    join.left,
                    join.right,
                    join.on,
                    join.filter,
                    join_type,
                    join.join_constraint,
                    join.null_equality,
                    false,
                )?;
                Ok(Transformed::yes(LogicalPlan::Join(join)))
            })?
            .data)
    }

    /// The distinct `key` values of the rows `input`'s changes reach (see
    /// [`Self::over`]), or more: replacing a key whose rows did not change
    /// recomputes the rows it has. So the query is read without what
    /// cannot add keys: an outer join whose other side gives no key column
    /// keeps every row of its preserved side, so that side alone gives the
    /// same keys. And where only more rows could reach the top (through
    /// projections, inner and semi joins, the preserved side of outer and
    /// anti joins, groupings without aggregates), filters are dropped (a
    /// `rn = 1` over a window goes, and the window's sort with it), an
    /// inner join of the change with a side that gives nothing but what
    /// the join equates becomes the change alone, and `(A ⋈ B) ⋈ change`
    /// becomes `A ⋈ (B ⋈ change)`. Below an aggregate or window whose
    /// values are read, nothing is dropped: more rows would change them.
    pub fn keys_over(&self, input: &Change, key: &[String]) -> Result<LogicalPlan> {
        // Join conditions as the optimizer sees them: equalities as keys.
        let plan = self
            .over(input, Side::All)?
            .transform_up_with_subqueries(|node| {
                ExtractEquijoinPredicate::new().rewrite(node, &OptimizerContext::new())
            })?
            .data;
        let columns: Vec<Column> = key
            .iter()
            .map(|k| {
                plan.schema()
                    .qualified_field_with_unqualified_name(k)
                    .map(Column::from)
            })
            .collect::<datafusion::error::Result<_>>()?;
        let plan = prune(&plan, &columns, input.name(), true)?;
        Ok(LogicalPlanBuilder::from(plan)
            .project(columns.into_iter().map(Expr::Column))?
            .distinct()?
            .build()?)
    }

    /// The one changed input, when the query reads nothing else and
    /// maps each of its rows to at most one output row (projections and
    /// filters only): its output then changes by exactly the rows its
    /// inserted and deleted rows give.
    pub fn row_wise(&self) -> Option<&Change> {
        let [only] = self.inputs.as_slice() else {
            return None;
        };
        let mut node = &self.plan;
        loop {
            node = match node {
                LogicalPlan::Projection(p) if p.expr.iter().all(plain) => &p.input,
                LogicalPlan::Filter(f) if plain(&f.predicate) => &f.input,
                LogicalPlan::SubqueryAlias(a) => &a.input,
                LogicalPlan::TableScan(scan) if is_input(&scan.table_name, only.name()) => {
                    return Some(only);
                }
                _ => return None,
            };
        }
    }
}

/// Whether `column` (of some plan's output) is among `required`; an
/// unqualified reference matches any qualifier.
fn wanted(required: &[Column], column: &Column) -> bool {
    required.iter().any(|r| {
        r.name == column.name
            && (r.relation.is_none() || column.relation.is_none() || r.relation == column.relation)
    })
}

/// The columns `exprs` read.
fn refs<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Vec<Column> {
    let mut out: Vec<Column> = Vec::new();
    for e in exprs {
        for c in e.column_refs() {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

/// `plan` giving at least its `required` columns, without what only
/// other columns need: unused projections, aggregates and window
/// functions, and outer joins whose non-preserved side gives nothing
/// required. A dropped outer join keeps every row of its preserved side
/// at least once, so it may only repeat rows: for distinct keys, the
/// same answer.
///
/// Where `wide` holds, more rows than `plan` gives are as good (the
/// operators above can only give more keys from more rows: see
/// [`Changed::keys_over`]), so filters are dropped, and an inner join
/// keeps only the side that reads the change when the other side gives
/// nothing required but columns it equates with the first side's.
fn prune(
    plan: &LogicalPlan,
    required: &[Column],
    input: &str,
    wide: bool,
) -> datafusion::error::Result<LogicalPlan> {
    let all = |p: &LogicalPlan| p.schema().columns();
    Ok(match plan {
        LogicalPlan::Projection(p) => {
            let mut keep: Vec<Expr> = p
                .expr
                .iter()
                .zip(p.schema.columns())
                .filter(|(_, c)| wanted(required, c))
                .map(|(e, _)| e.clone())
                .collect();
            if keep.is_empty() {
                keep = p.expr.iter().take(1).cloned().collect();
            }
            let input = prune(&p.input, &refs(&keep), input, wide)?;
            LogicalPlan::Projection(Projection::try_new(keep, Arc::new(input))?)
        }
        LogicalPlan::Filter(f) if wide => prune(&f.input, required, input, wide)?,
        LogicalPlan::Filter(f) => {
            let mut need = required.to_vec();
            need.extend(refs([&f.predicate]));
            let input = prune(&f.input, &need, input, wide)?;
            LogicalPlan::Filter(Filter::try_new(f.predicate.clone(), Arc::new(input))?)
        }
        LogicalPlan::SubqueryAlias(a) => {
            let inner = all(&a.input);
            let need: Vec<Column> = a
                .schema
                .columns()
                .iter()
                .zip(inner)
                .filter(|(outer, _)| wanted(required, outer))
                .map(|(_, inner)| inner)
                .collect();
            let input = prune(&a.input, &need, input, wide)?;
            LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(input), a.alias.clone())?)
        }
        LogicalPlan::Join(j) => {
            let gives = |side: &LogicalPlan| all(side).iter().any(|c| wanted(required, c));
            match j.join_type {
                JoinType::Left if !gives(&j.right) => return prune(&j.left, required, input, wide),
                JoinType::Right if !gives(&j.left) => {
                    return prune(&j.right, required, input, wide);
                }
                JoinType::Inner if wide && j.filter.is_none() => {
                    if let Some(side) = one_side(j, required, input)? {
                        return Ok(side);
                    }
                    if let Some(rotated) = rotate(j, input)? {
                        return prune(&rotated, required, input, wide);
                    }
                }
                _ => {}
            }
            let mut need = required.to_vec();
            need.extend(refs(j.on.iter().flat_map(|(l, r)| [l, r])));
            need.extend(refs(j.filter.iter()));
            // Which sides may give more rows: both of an inner or semi
            // join, the preserved side of an outer or anti join.
            let (left_wide, right_wide) = match j.join_type {
                JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => (wide, wide),
                JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => (wide, false),
                JoinType::Right | JoinType::RightAnti | JoinType::RightMark => (false, wide),
                JoinType::Full => (false, false),
            };
            LogicalPlan::Join(Join::try_new(
                Arc::new(prune(&j.left, &need, input, left_wide)?),
                Arc::new(prune(&j.right, &need, input, right_wide)?),
                j.on.clone(),
                j.filter.clone(),
                j.join_type,
                j.join_constraint,
                j.null_equality,
                j.null_aware,
            )?)
        }
        LogicalPlan::Aggregate(a)
            if a.group_expr
                .iter()
                .all(|e| !matches!(e, Expr::GroupingSet(_))) =>
        {
            let outputs = a.schema.columns();
            let keep: Vec<Expr> = a
                .aggr_expr
                .iter()
                .zip(outputs.iter().skip(a.group_expr.len()))
                .filter(|(_, c)| wanted(required, c))
                .map(|(e, _)| e.clone())
                .collect();
            // Without aggregates it only gives the distinct groups, which
            // more rows only add to.
            let wide = wide && keep.is_empty();
            let input = prune(
                &a.input,
                &refs(a.group_expr.iter().chain(&keep)),
                input,
                wide,
            )?;
            LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(input),
                a.group_expr.clone(),
                keep,
            )?)
        }
        LogicalPlan::Window(w) => {
            let outputs = w.schema.columns();
            let keep: Vec<Expr> = w
                .window_expr
                .iter()
                .zip(outputs.iter().skip(w.input.schema().fields().len()))
                .filter(|(_, c)| wanted(required, c))
                .map(|(e, _)| e.clone())
                .collect();
            let mut need = required.to_vec();
            need.extend(refs(&keep));
            if keep.is_empty() {
                prune(&w.input, &need, input, wide)?
            } else {
                let input = prune(&w.input, &need, input, false)?;
                LogicalPlan::Window(Window::try_new(keep, Arc::new(input))?)
            }
        }
        // Anything else is kept whole, over inputs that give all their
        // columns.
        other => other
            .clone()
            .map_children(|child| {
                let columns = all(&child);
                prune(&child, &columns, input, false).map(Transformed::yes)
            })?
            .data
            .recompute_schema()?,
    })
}

/// For an inner join of a side that reads the change and one that does
/// not, where the latter gives no `required` column but ones the join
/// equates with the former's: the former alone, projected to `required`
/// (the latter's columns read from their equals). Its keys are a superset
/// of the join's.
fn one_side(
    j: &Join,
    required: &[Column],
    input: &str,
) -> datafusion::error::Result<Option<LogicalPlan>> {
    let (keep, drop, flipped) = match (reads(&j.left, input), reads(&j.right, input)) {
        (true, false) => (&j.left, &j.right, false),
        (false, true) => (&j.right, &j.left, true),
        _ => return Ok(None),
    };
    let dropped = drop.schema().columns();
    let kept = keep.schema().columns();
    let mut exprs = Vec::new();
    let mut need = Vec::new();
    for column in required {
        let from_kept = kept
            .iter()
            .find(|c| wanted(std::slice::from_ref(column), c));
        if let Some(c) = from_kept {
            exprs.push(Expr::Column(c.clone()));
            need.push(c.clone());
            continue;
        }
        let Some(theirs) = dropped
            .iter()
            .find(|c| wanted(std::slice::from_ref(column), c))
        else {
            return Ok(None);
        };
        let equal = j.on.iter().find_map(|(l, r)| {
            let (dropped_side, kept_side) = if flipped { (l, r) } else { (r, l) };
            match (dropped_side, kept_side) {
                (Expr::Column(d), Expr::Column(k)) if d == theirs => Some(k.clone()),
                _ => None,
            }
        });
        let Some(equal) = equal else {
            return Ok(None);
        };
        exprs.push(
            Expr::Column(equal.clone()).alias_qualified(theirs.relation.clone(), &theirs.name),
        );
        need.push(equal);
    }
    if exprs.is_empty() {
        return Ok(Some(prune(keep, &kept, input, true)?));
    }
    let side = prune(keep, &need, input, true)?;
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(side),
    )?)))
}

/// `(A ⋈ B) ⋈ C` as `A ⋈ (B ⋈ C)`, for inner equi-joins where only `C`
/// reads the change and the outer join reads only `B`'s columns: the
/// change then meets `B` before `A` (same rows, same columns in the same
/// order), so a small change is not joined to all of `A` first.
fn rotate(j: &Join, input: &str) -> datafusion::error::Result<Option<LogicalPlan>> {
    let (LogicalPlan::Join(inner), false, true) = (
        j.left.as_ref(),
        reads(&j.left, input),
        reads(&j.right, input),
    ) else {
        return Ok(None);
    };
    if inner.join_type != JoinType::Inner || inner.filter.is_some() || j.on.is_empty() {
        return Ok(None);
    }
    let b = inner.right.schema();
    let from_b = j.on.iter().all(|(l, _)| {
        l.column_refs()
            .iter()
            .all(|c| b.has_column(c) && !inner.left.schema().has_column(c))
    });
    if !from_b {
        return Ok(None);
    }
    let b_c = Join::try_new(
        Arc::clone(&inner.right),
        Arc::clone(&j.right),
        j.on.clone(),
        None,
        JoinType::Inner,
        j.join_constraint,
        j.null_equality,
        false,
    )?;
    Ok(Some(LogicalPlan::Join(Join::try_new(
        Arc::clone(&inner.left),
        Arc::new(LogicalPlan::Join(b_c)),
        inner.on.clone(),
        None,
        JoinType::Inner,
        inner.join_constraint,
        inner.null_equality,
        false,
    )?)))
}

/// An expression without subqueries.
fn plain(expr: &Expr) -> bool {
    !expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(true)
}

fn is_input(table: &TableReference, name: &str) -> bool {
    table.table() == name && table.schema().is_none_or(|s| s == DEFAULT_SCHEMA)
}

/// Does the plan read `name`?
fn reads(plan: &LogicalPlan, name: &str) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        if let LogicalPlan::TableScan(scan) = n
            && is_input(&scan.table_name, name)
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The relations a plan scans, `(schema, name)`, each once.
fn scanned(plan: &LogicalPlan) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let _ = plan.apply_with_subqueries(|n| {
        if let LogicalPlan::TableScan(scan) = n {
            let schema = scan
                .table_name
                .schema()
                .unwrap_or(DEFAULT_SCHEMA)
                .to_owned();
            let entry = (schema, scan.table_name.table().to_owned());
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// The plan with every view it scans replaced by the view's query (as a
/// subquery under the view's name), down to tables, raw sources and table
/// functions.
pub async fn inline_views(state: &SessionState, mut plan: LogicalPlan) -> Result<LogicalPlan> {
    for _ in 0..MAX_VIEW_DEPTH {
        // Plan each view scan's query (planning is async, the rewrite is not).
        let mut views: BTreeMap<String, LogicalPlan> = BTreeMap::new();
        let mut pending = Vec::new();
        plan.apply_with_subqueries(|n| {
            if let LogicalPlan::TableScan(scan) = n
                && let Ok(provider) = source_as_provider(&scan.source)
                && view_of(&provider).is_some()
            {
                pending.push((view_key(scan), provider, scan.projection.clone()));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if pending.is_empty() {
            return Ok(plan);
        }
        for (key, provider, projection) in pending {
            if views.contains_key(&key) {
                continue;
            }
            let view = view_of(&provider).expect("checked above");
            views.insert(key, view.logical_plan(state, projection.as_ref()).await?);
        }
        plan = plan
            .transform_up_with_subqueries(|node| {
                let LogicalPlan::TableScan(scan) = &node else {
                    return Ok(Transformed::no(node));
                };
                let Some(query) = views.get(&view_key(scan)) else {
                    return Ok(Transformed::no(node));
                };
                let alias =
                    SubqueryAlias::try_new(Arc::new(query.clone()), scan.table_name.clone())?;
                Ok(Transformed::yes(LogicalPlan::SubqueryAlias(alias)))
            })?
            .data;
    }
    Err(Error::DataFusion(DataFusionError::Plan(format!(
        "views read views more than {MAX_VIEW_DEPTH} deep"
    ))))
}

fn view_of(provider: &Arc<dyn TableProvider>) -> Option<&ViewProvider> {
    let any: &dyn std::any::Any = provider.as_ref();
    any.downcast_ref::<ViewProvider>()
}

/// Identifies a view scan: its name and the columns it reads.
fn view_key(scan: &datafusion::logical_expr::TableScan) -> String {
    format!("{}{:?}", scan.table_name, scan.projection)
}
