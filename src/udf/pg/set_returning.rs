//! PostgreSQL's set-returning functions over arrays that clients put in
//! FROM: `information_schema._pg_expandarray(array)` (pgjdbc, DBeaver) —
//! one row `(x, n)` per element with its 1-based position — and
//! `generate_subscripts(array, dim [, reverse])`, the subscripts of a
//! dimension. Their arguments are evaluated once, when the query is
//! planned, so they take constant arrays (a lateral reference to a column
//! is not a constant and is refused).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int32Array, RecordBatch, RecordBatchOptions, new_empty_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;

/// The value of a constant argument.
fn constant(args: &TableFunctionArgs, i: usize, function: &str) -> Result<ScalarValue> {
    let Some(expr) = args.exprs().get(i) else {
        return plan_err!("{function}: missing argument {}", i + 1);
    };
    let physical = args
        .session()
        .create_physical_expr(expr.clone(), &DFSchema::empty())
        .or_else(|_| plan_err!("{function}: argument {} must be a constant", i + 1))?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(s) => Ok(s),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

/// The elements of a list value (none for NULL).
fn elements(value: &ScalarValue, function: &str) -> Result<Option<ArrayRef>> {
    let list = match value {
        ScalarValue::List(l) => l.value(0),
        ScalarValue::LargeList(l) => l.value(0),
        ScalarValue::FixedSizeList(l) => l.value(0),
        v if v.is_null() => return Ok(None),
        v => return plan_err!("{function}: expected an array, got {}", v.data_type()),
    };
    Ok(Some(list))
}

fn table(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn positions(n: usize) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(1..=n as i32))
}

#[derive(Debug)]
pub struct ExpandArray;

impl TableFunctionImpl for ExpandArray {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        const NAME: &str = "_pg_expandarray";
        if args.exprs().len() != 1 {
            return plan_err!("{NAME} takes one array");
        }
        let value = constant(&args, 0, NAME)?;
        let element_type = match value.data_type() {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type().clone()
            }
            _ => DataType::Null,
        };
        let x = elements(&value, NAME)?.unwrap_or_else(|| new_empty_array(&element_type));
        let n = positions(x.len());
        table(
            vec![
                Field::new("x", x.data_type().clone(), true),
                Field::new("n", DataType::Int32, false),
            ],
            vec![x, n],
        )
    }
}

#[derive(Debug)]
pub struct GenerateSubscripts;

impl TableFunctionImpl for GenerateSubscripts {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        const NAME: &str = "generate_subscripts";
        if !(2..=3).contains(&args.exprs().len()) {
            return plan_err!("{NAME} takes an array, a dimension and optionally reverse");
        }
        let dim = match constant(&args, 1, NAME)?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(d)) => d,
            _ => 0,
        };
        let reverse = args.exprs().len() == 3
            && constant(&args, 2, NAME)? == ScalarValue::Boolean(Some(true));
        // Dimension d of a nested array: descend through first elements.
        let mut level = elements(&constant(&args, 0, NAME)?, NAME)?;
        for _ in 1..dim.max(1) {
            level = match level {
                Some(a) if !a.is_empty() && !a.is_null(0) => {
                    elements(&ScalarValue::try_from_array(&a, 0)?, NAME).unwrap_or(None)
                }
                _ => None,
            };
        }
        let len = if dim < 1 {
            0
        } else {
            level.map_or(0, |a| a.len())
        };
        let mut subscripts: Vec<i32> = (1..=len as i32).collect();
        if reverse {
            subscripts.reverse();
        }
        table(
            vec![Field::new(NAME, DataType::Int32, false)],
            vec![Arc::new(Int32Array::from(subscripts))],
        )
    }
}
