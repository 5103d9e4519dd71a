//! The point-lookup fast path: a prepared `SELECT cols FROM t WHERE k = $1`
//! over a published table is answered from an in-memory index of that
//! table version, without planning or scanning.
//!
//! A client prepares a statement once and executes it many times (pgbench
//! `-M prepared`, pgjdbc past `prepareThreshold`, every ORM). When the
//! statement's plan is a projection of plain columns over one equality
//! filter between a column and a parameter over one published table
//! ([`PointLookup::recognise`], at Parse), each Execute looks the key up in
//! a [`KeyIndex`] of the table's current version: the table's rows, read
//! once through the same provider a query uses (deleted rows excluded),
//! and a hash map from key to row.
//!
//! Published versions are immutable, so an index is exact for its version;
//! a newer version (a model run, an INSERT) gets a new index on first use
//! and the old one is dropped. Only tables the server may keep in memory
//! (`--resident-memory`, see `catalog::resident`) are indexed; others take
//! the ordinary path, as does every statement that is not of this shape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::prelude::SessionContext;
use tokio::sync::OnceCell;

use crate::catalog::{Catalog, RelationKind};
use crate::error::Result;

/// A prepared statement that is a point lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct PointLookup {
    schema: String,
    table: String,
    key: String,
    /// `$n` holding the key (1-based).
    param: usize,
    /// The table's columns the statement returns, in order.
    columns: Vec<String>,
    limit: Option<usize>,
}

impl PointLookup {
    /// The point lookup `plan` (unoptimised, as planned at Parse) is, if
    /// it is one; an unqualified table is in `default_schema`.
    pub fn recognise(plan: &LogicalPlan, default_schema: &str) -> Option<Self> {
        let (plan, limit) = match plan {
            LogicalPlan::Limit(l) => {
                let fetch = match l.get_fetch_type().ok()? {
                    datafusion::logical_expr::logical_plan::FetchType::Literal(n) => n,
                    _ => return None,
                };
                let skip = match l.get_skip_type().ok()? {
                    datafusion::logical_expr::logical_plan::SkipType::Literal(n) => n,
                    _ => return None,
                };
                if skip != 0 {
                    return None;
                }
                (l.input.as_ref(), fetch)
            }
            other => (other, None),
        };
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let columns = projection
            .expr
            .iter()
            .map(|e| match e.clone().unalias() {
                Expr::Column(c) => Some(c.name),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let mut input = projection.input.as_ref();
        if let LogicalPlan::SubqueryAlias(a) = input {
            input = a.input.as_ref();
        }
        let LogicalPlan::Filter(filter) = input else {
            return None;
        };
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = &filter.predicate
        else {
            return None;
        };
        let (key, param) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), p) | (p, Expr::Column(c)) => (c.name.clone(), placeholder(p)?),
            _ => return None,
        };
        let mut scan = filter.input.as_ref();
        if let LogicalPlan::SubqueryAlias(a) = scan {
            scan = a.input.as_ref();
        }
        let LogicalPlan::TableScan(scan) = scan else {
            return None;
        };
        if !scan.filters.is_empty() || scan.fetch.is_some() {
            return None;
        }
        let (schema, table) = match &scan.table_name {
            TableReference::Full { schema, table, .. }
            | TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
            TableReference::Bare { table } => (default_schema.to_owned(), table.to_string()),
        };
        Some(Self {
            schema,
            table,
            key,
            param,
            columns,
            limit,
        })
    }
}

/// `$n` (also cast to a type), as its number.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Placeholder(p) => p.id.strip_prefix('$')?.parse().ok(),
        Expr::Cast(c) => placeholder(&c.expr),
        _ => None,
    }
}

/// One table version's rows (the batches its scan gave, shared with the
/// resident copy, not copied) and where each key's rows are.
pub struct KeyIndex {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// Key → (batch, row) of each row holding it.
    by_key: HashMap<ScalarValue, Vec<(usize, usize)>>,
}

impl KeyIndex {
    async fn build(
        ctx: &SessionContext,
        provider: Arc<dyn datafusion::catalog::TableProvider>,
        key: &str,
    ) -> Result<Self> {
        let schema = provider.schema();
        let key = schema.index_of(key)?;
        let batches = ctx.read_table(provider)?.collect().await?;
        let mut by_key: HashMap<ScalarValue, Vec<(usize, usize)>> = HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let keys = batch.column(key);
            for row in 0..batch.num_rows() {
                if keys.is_null(row) {
                    continue;
                }
                by_key
                    .entry(ScalarValue::try_from_array(keys, row)?)
                    .or_default()
                    .push((b, row));
            }
        }
        Ok(Self {
            schema,
            batches,
            by_key,
        })
    }

    /// Column `name` of the rows at `at`.
    fn column(&self, name: &str, at: &[(usize, usize)]) -> Result<ArrayRef> {
        let i = self.schema.index_of(name)?;
        if self.batches.is_empty() {
            return Ok(new_empty_array(self.schema.field(i).data_type()));
        }
        let columns: Vec<&dyn Array> = self.batches.iter().map(|b| b.column(i).as_ref()).collect();
        Ok(interleave(&columns, at)?)
    }
}

type Slot = Arc<OnceCell<Arc<KeyIndex>>>;
/// (schema, table, key column).
type IndexId = (String, String, String);

/// The indexes built so far, one per (schema, table, key column), for the
/// version last asked for.
#[derive(Default)]
pub struct KeyIndexes {
    /// Per index, the version its slot is for.
    slots: Mutex<HashMap<IndexId, (String, Slot)>>,
}

impl std::fmt::Debug for KeyIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyIndexes")
    }
}

impl KeyIndexes {
    /// The rows `lookup` returns for `params`, shaped as `schema` (the
    /// statement's result columns); None when the fast path does not apply
    /// (the table is gone, not a published table, or too big).
    pub async fn answer(
        &self,
        ctx: &SessionContext,
        catalog: &Catalog,
        lookup: &PointLookup,
        params: &ParamValues,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>> {
        let snap = catalog.snapshot();
        let Some(relation) = snap.relation(&lookup.schema, &lookup.table) else {
            return Ok(None);
        };
        let Some(pointer) = relation.pointer.as_ref() else {
            return Ok(None);
        };
        if relation.kind != RelationKind::Table || !catalog.resident().fits(pointer.bytes) {
            return Ok(None);
        }
        let ParamValues::List(values) = params else {
            return Ok(None);
        };
        let Some(value) = values.get(lookup.param - 1) else {
            return Ok(None);
        };
        let key_type = relation
            .arrow_schema
            .field_with_name(&lookup.key)?
            .data_type()
            .clone();
        let slot = self.slot(lookup, &pointer.version);
        let index = slot
            .get_or_try_init(|| async {
                KeyIndex::build(ctx, Arc::clone(&relation.provider), &lookup.key)
                    .await
                    .map(Arc::new)
            })
            .await?;
        let mut rows: Vec<(usize, usize)> = key_value(value.value(), &key_type)
            .and_then(|key| index.by_key.get(&key).cloned())
            .unwrap_or_default();
        if let Some(limit) = lookup.limit {
            rows.truncate(limit);
        }
        catalog
            .stats()
            .index_scan(&lookup.schema, &lookup.table, rows.len());
        let columns = lookup
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(name, field)| cast_to(index.column(name, &rows)?, field.data_type()))
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }

    /// The slot of `lookup`'s index for `version`, replacing one built for
    /// an older version.
    fn slot(&self, lookup: &PointLookup, version: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let id = (
            lookup.schema.clone(),
            lookup.table.clone(),
            lookup.key.clone(),
        );
        match slots.get(&id) {
            Some((v, slot)) if v == version => Arc::clone(slot),
            _ => {
                let slot: Slot = Arc::default();
                slots.insert(id, (version.to_owned(), Arc::clone(&slot)));
                slot
            }
        }
    }
}

/// The parameter as the key column's type; None for NULL (which equals
/// nothing) or a value that is no value of that type.
fn key_value(value: &ScalarValue, key_type: &DataType) -> Option<ScalarValue> {
    if value.is_null() {
        return None;
    }
    let v = value.cast_to(key_type).ok()?;
    (!v.is_null()).then_some(v)
}

fn cast_to(array: ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        Ok(array)
    } else {
        Ok(datafusion::arrow::compute::cast(&array, to)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;

    async fn recognised(sql: &str) -> Option<PointLookup> {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        PointLookup::recognise(&plan, "public")
    }

    #[tokio::test]
    async fn only_plain_key_lookups_are_recognised() {
        let lookup = recognised("SELECT n, id FROM t WHERE id = $1")
            .await
            .unwrap();
        assert_eq!(
            (
                lookup.schema.as_str(),
                lookup.table.as_str(),
                lookup.key.as_str()
            ),
            ("public", "t", "id")
        );
        assert_eq!((lookup.param, lookup.limit), (1, None));
        assert_eq!(lookup.columns, ["n", "id"]);
        let aliased = recognised("SELECT x.id AS k FROM t AS x WHERE $2 = x.n LIMIT 1")
            .await
            .unwrap();
        assert_eq!((aliased.key.as_str(), aliased.param), ("n", 2));
        assert_eq!(aliased.limit, Some(1));
        assert_eq!(aliased.columns, ["id"]);
        for other in [
            "SELECT id FROM t WHERE id = $1 AND n > 0",
            "SELECT upper(id) FROM t WHERE id = $1",
            "SELECT id FROM t WHERE id = 'a'",
            "SELECT id FROM t WHERE id > $1",
            "SELECT id FROM t WHERE id = $1 LIMIT 1 OFFSET 1",
            "SELECT count(*) FROM t WHERE id = $1",
            "SELECT a.id FROM t a JOIN t b ON a.id = b.id WHERE a.id = $1",
        ] {
            assert_eq!(recognised(other).await, None, "{other}");
        }
    }
}
