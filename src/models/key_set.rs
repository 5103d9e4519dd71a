//! The keys a merge recomputes, as one filter expression that holds them
//! by reference: `merge_keys(column)` is true when the column's value is
//! one of the keys (or NULL, when NULL is a key).
//!
//! A merge filters its model's output to the keys its changes touch — often
//! thousands. Written as `column IN (literals)`, each key is an expression of
//! its own, and DataFusion's logical optimiser copies and rewrites the list
//! wherever the filter goes, pass after pass: planning one merge query took
//! 0.1–0.5 s. This function carries the keys as one Arrow array behind an
//! `Arc`, so a copy of the filter is a reference count, and equality is the
//! identity of the set.
//!
//! DataFusion pushes it down as it would push the `IN` list: it is immutable
//! and refers to the key column alone, so it passes through projections,
//! aggregates and windows grouped by the key, and is inferred across the
//! join keys of inner joins (and of outer joins, where NULL does not pass).
//! [`super::index_scan`] reads its keys to look them up in a column index.
//! It evaluates through DataFusion's own `IN` set.
//!
//! Short lists keep `IN`, whose values Parquet statistics can prune by (see
//! [`MAX_LISTED`]). The function lives in a merge's plan only: it is not a
//! SQL function, and it does not serialise (merges run in the process).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, is_null, or_kleene};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{InListExpr, col as physical_col};
use datafusion::physical_expr::{ScalarFunctionExpr, expressions::Column};

/// Up to this many keys, a filter is an `IN` list: DataFusion's Parquet
/// pruning reads `IN` lists of up to 20 values against row-group
/// statistics, and planning so few literals is cheap.
pub const MAX_LISTED: usize = 20;

/// `column` restricted to `values` (distinct and non-null, all of the
/// column's type), or NULL too when `nulls`.
pub fn keys_filter(column: Expr, values: ArrayRef, nulls: bool) -> Result<Expr> {
    if values.len() <= MAX_LISTED {
        let list = (0..values.len())
            .map(|i| {
                Ok(Expr::Literal(
                    ScalarValue::try_from_array(&values, i)?,
                    None,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let listed = column.clone().in_list(list, false);
        return Ok(if nulls {
            listed.or(column.is_null())
        } else {
            listed
        });
    }
    let udf = ScalarUDF::new_from_impl(KeySet::new(values, nulls));
    Ok(udf.call(vec![column]))
}

/// A `merge_keys` call in a physical plan: the column it reads (its index
/// in the input) and its non-null keys.
pub fn looked_up(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, &ArrayRef)> {
    let call = expr.downcast_ref::<ScalarFunctionExpr>()?;
    let set = call.fun().inner().downcast_ref::<KeySet>()?;
    let [arg] = call.args() else { return None };
    Some((arg.downcast_ref::<Column>()?.index(), &set.values))
}

/// Distinguishes sets: two sets are equal when one is a copy of the other.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct KeySet {
    id: u64,
    values: ArrayRef,
    nulls: bool,
    signature: Signature,
    /// The `IN` set over the keys, built on first use.
    member: OnceLock<InListExpr>,
}

impl KeySet {
    fn new(values: ArrayRef, nulls: bool) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            values,
            nulls,
            signature: Signature::any(1, Volatility::Immutable),
            member: OnceLock::new(),
        }
    }

    fn member(&self) -> Result<&InListExpr> {
        if let Some(member) = self.member.get() {
            return Ok(member);
        }
        let schema = Schema::new(vec![Field::new("k", self.values.data_type().clone(), true)]);
        let built = InListExpr::try_new_from_array(
            physical_col("k", &schema)?,
            Arc::clone(&self.values),
            false,
            &schema,
        )?;
        Ok(self.member.get_or_init(|| built))
    }

    /// Membership of each of `column`'s values.
    fn contains(&self, column: &ArrayRef) -> Result<BooleanArray> {
        let rows = column.len();
        if column.data_type() == &DataType::Null {
            return Ok(BooleanArray::from(vec![self.nulls.then_some(true); rows]));
        }
        let column = if column.data_type() == self.values.data_type() {
            Arc::clone(column)
        } else {
            cast(column, self.values.data_type())?
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "k",
            column.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::clone(&column)])?;
        let found = self.member()?.evaluate(&batch)?.into_array(rows)?;
        let Some(found) = found.as_any().downcast_ref::<BooleanArray>().cloned() else {
            return internal_err!("merge_keys: IN gave {}, not booleans", found.data_type());
        };
        if self.nulls && column.null_count() > 0 {
            return Ok(or_kleene(&found, &is_null(&column)?)?);
        }
        Ok(found)
    }
}

impl PartialEq for KeySet {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for KeySet {}

impl Hash for KeySet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl ScalarUDFImpl for KeySet {
    fn name(&self) -> &str {
        "merge_keys"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Array(column) => ColumnarValue::Array(Arc::new(self.contains(column)?)),
            ColumnarValue::Scalar(value) => {
                let found = self.contains(&value.to_array()?)?;
                ColumnarValue::Scalar(ScalarValue::try_from_array(&found, 0)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// `a(k, n)`: 200 rows, keys `k0`..`k49` and NULL; `b(k, w)`: one row
    /// per key `k0`..`k99`.
    async fn tables() -> SessionContext {
        let ctx = SessionContext::new();
        let table = |k: Vec<Option<String>>, n: Vec<i64>, other: &str| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new(other, DataType::Int64, false),
            ]));
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(n)),
                ],
            )
            .unwrap();
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
        };
        let a_keys = (0..200)
            .map(|i| (i % 51 != 50).then(|| format!("k{}", i % 51)))
            .collect();
        ctx.register_table("a", table(a_keys, (0..200).collect(), "n"))
            .unwrap();
        let b_keys = (0..100).map(|i| Some(format!("k{i}"))).collect();
        ctx.register_table("b", table(b_keys, (0..100).collect(), "w"))
            .unwrap();
        ctx
    }

    /// The model: per key of `a`, its rows' sum and the joined weight.
    const MODEL: &str = "SELECT a.k, sum(a.n) AS n, max(b.w) AS w \
        FROM a LEFT JOIN b ON a.k = b.k GROUP BY a.k";

    async fn filtered(ctx: &SessionContext, filter: Expr) -> (String, String) {
        let frame = ctx.sql(MODEL).await.unwrap().filter(filter).unwrap();
        let plan = frame.clone().into_optimized_plan().unwrap();
        let mut rows = frame
            .sort_by(vec![col("k")])
            .unwrap()
            .collect()
            .await
            .unwrap();
        rows.retain(|b| b.num_rows() > 0);
        (
            pretty_format_batches(&rows).unwrap().to_string(),
            plan.display_indent().to_string(),
        )
    }

    #[tokio::test]
    async fn a_key_set_keeps_what_the_in_list_keeps_and_is_pushed_to_both_sides() {
        let ctx = tables().await;
        let keys: Vec<String> = (0..60).step_by(2).map(|i| format!("k{i}")).collect();
        let values: ArrayRef = Arc::new(StringArray::from(keys.clone()));
        for nulls in [false, true] {
            let set = keys_filter(col("k"), Arc::clone(&values), nulls).unwrap();
            let mut listed = col("k").in_list(keys.iter().map(lit).collect(), false);
            if nulls {
                listed = listed.or(col("k").is_null());
            }
            let (rows, plan) = filtered(&ctx, set).await;
            let (expected, _) = filtered(&ctx, listed).await;
            assert_eq!(rows, expected, "nulls={nulls}");
            assert!(rows.contains("k48"), "{rows}");
            assert!(!rows.contains("k49"), "{rows}");
            assert_eq!(rows.contains("|    |"), nulls, "{rows}");
            // Pushed below the aggregate onto the scan of `a`, and (when
            // NULL is not a key, so the left join's NULLs cannot pass)
            // inferred onto `b` through the join key.
            let scans: Vec<&str> = plan.lines().filter(|l| l.contains("merge_keys")).collect();
            assert!(
                plan.lines()
                    .skip_while(|l| !l.contains("Aggregate"))
                    .any(|l| l.contains("merge_keys(a.k)")),
                "{plan}"
            );
            assert_eq!(
                scans.iter().any(|l| l.contains("merge_keys(b.k")),
                !nulls,
                "{plan}"
            );
        }
    }

    #[tokio::test]
    async fn short_lists_stay_in_lists_and_equal_sets_are_copies() {
        let values: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        let short = keys_filter(col("k"), Arc::clone(&values), false).unwrap();
        assert!(matches!(short, Expr::InList(_)), "{short}");
        let many: ArrayRef = Arc::new(Int64Array::from((0..100).collect::<Vec<_>>()));
        let one = keys_filter(col("k"), Arc::clone(&many), false).unwrap();
        let other = keys_filter(col("k"), many, false).unwrap();
        assert_eq!(one, one.clone());
        assert_ne!(one, other);
    }
}
