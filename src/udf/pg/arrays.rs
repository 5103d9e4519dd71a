//! `array_lower(array, dim)` and `array_upper(array, dim)`: PostgreSQL's
//! array bounds. Arrays here are lists, always one-dimensional and indexed
//! from 1, so the bounds are 1 and the length; NULL for an empty array or
//! another dimension, as in PostgreSQL. (Grafana's table picker walks the
//! search path with them, through `generate_series`, which takes bigint:
//! so they return bigint, where PostgreSQL returns integer.)

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result};

use super::{PgCall, PgFn};
use crate::catalog::Catalog;

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    vec![
        PgFn::new(
            "array_lower",
            &[2],
            DataType::Int64,
            |c| bound(c, false),
            catalog,
        ),
        PgFn::new(
            "array_upper",
            &[2],
            DataType::Int64,
            |c| bound(c, true),
            catalog,
        ),
    ]
}

fn bound(c: &PgCall, upper: bool) -> Result<ArrayRef> {
    let lengths: Vec<Option<usize>> = match c.args[0].data_type() {
        DataType::List(_) => {
            let list = c.args[0].as_list::<i32>();
            (0..list.len())
                .map(|r| (!list.is_null(r)).then(|| list.value(r).len()))
                .collect()
        }
        DataType::LargeList(_) => {
            let list = c.args[0].as_list::<i64>();
            (0..list.len())
                .map(|r| (!list.is_null(r)).then(|| list.value(r).len()))
                .collect()
        }
        DataType::Null => vec![None; c.rows],
        other => {
            return Err(DataFusionError::Plan(format!(
                "function array_{}({other}, integer) does not exist",
                if upper { "upper" } else { "lower" }
            )));
        }
    };
    let dims = datafusion::arrow::compute::cast(&c.args[1], &DataType::Int64)?;
    let dims = dims.as_primitive::<Int64Type>();
    let out: Int64Array = lengths
        .into_iter()
        .enumerate()
        .map(|(r, len)| {
            let len = len.filter(|l| *l > 0)?;
            if dims.is_null(r) || dims.value(r) != 1 {
                return None;
            }
            Some(if upper { len as i64 } else { 1 })
        })
        .collect();
    Ok(Arc::new(out))
}
