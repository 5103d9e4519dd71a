//! PostgreSQL's system functions that clients call while introspecting
//! (`version()`, `format_type`, `pg_table_is_visible`, …), answered from our
//! catalog. Each is a plain `fn` over argument arrays, wrapped in [`PgFn`];
//! they run on catalog-sized inputs, so clarity wins over vectorisation.

mod arrays;
mod catalog_lookup;
mod identifiers;
mod json;
mod keywords;
mod privileges;
mod session_info;
mod set_returning;
mod signals;
mod sizes;
mod types;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::catalog::Catalog;

/// What a function body sees: its arguments as arrays of `rows` values.
pub struct PgCall<'a> {
    pub args: Vec<ArrayRef>,
    pub rows: usize,
    pub catalog: &'a Catalog,
    pub config: &'a ConfigOptions,
}

type Body = fn(&PgCall) -> Result<ArrayRef>;

/// A PostgreSQL system function: name, accepted argument counts, result type.
pub struct PgFn {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
    body: Body,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for PgFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFn({})", self.name)
    }
}

impl PartialEq for PgFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for PgFn {}
impl Hash for PgFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl PgFn {
    fn new(
        name: &'static str,
        arities: &[usize],
        return_type: DataType,
        body: Body,
        catalog: &Arc<Catalog>,
    ) -> Self {
        let sigs = arities
            .iter()
            .map(|&n| {
                if n == 0 {
                    TypeSignature::Nullary
                } else {
                    TypeSignature::Any(n)
                }
            })
            .collect();
        Self {
            name,
            signature: Signature::one_of(sigs, Volatility::Stable),
            return_type,
            body,
            catalog: Arc::clone(catalog),
        }
    }
}

impl PgFn {
    /// For functions with effects: never evaluated while planning, once
    /// per row.
    fn volatile(mut self) -> Self {
        self.signature.volatility = Volatility::Volatile;
        self
    }
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let config = Arc::clone(&args.config_options);
        row_wise(&args.args, args.number_rows, |columns, rows| {
            (self.body)(&PgCall {
                args: columns,
                rows,
                catalog: &self.catalog,
                config: &config,
            })
        })
    }
}

/// Calls `body` with the arguments as arrays of the rows it is called for
/// (one row when every argument is a constant, and then a constant
/// result).
pub(super) fn row_wise(
    args: &[ColumnarValue],
    number_rows: usize,
    body: impl FnOnce(Vec<ArrayRef>, usize) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let rows = if all_scalar { 1 } else { number_rows };
    let columns = args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<Result<_>>()?;
    let out = body(columns, rows)?;
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

pub fn register_all(ctx: &SessionContext, catalog: &Arc<Catalog>) {
    let fns = session_info::functions(catalog)
        .into_iter()
        .chain(catalog_lookup::functions(catalog))
        .chain(types::functions(catalog))
        .chain(privileges::functions(catalog))
        .chain(identifiers::functions(catalog))
        .chain(sizes::functions(catalog))
        .chain(arrays::functions(catalog))
        .chain(signals::functions(catalog));
    for f in fns {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(json::JsonBuild::object()));
    ctx.register_udf(ScalarUDF::new_from_impl(json::JsonBuild::array()));
    ctx.register_udtf("pg_get_keywords", Arc::new(keywords::PgGetKeywords));
    ctx.register_udtf("_pg_expandarray", Arc::new(set_returning::ExpandArray));
    ctx.register_udtf(
        "generate_subscripts",
        Arc::new(set_returning::GenerateSubscripts),
    );
}

/// Argument `i` as OIDs (NULL where it is NULL or not a number).
pub(crate) fn oids(call: &PgCall, i: usize) -> Result<Vec<Option<u32>>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;
    let a = datafusion::arrow::compute::cast(&call.args[i], &DataType::Int64)?;
    let a = a.as_primitive::<Int64Type>();
    Ok((0..a.len())
        .map(|r| {
            (!a.is_null(r))
                .then(|| a.value(r))
                .and_then(|v| u32::try_from(v).ok())
        })
        .collect())
}

/// Argument `i` as text.
pub(crate) fn texts(call: &PgCall, i: usize) -> Result<Vec<Option<String>>> {
    use datafusion::arrow::array::{Array, AsArray};
    let a = datafusion::arrow::compute::cast(&call.args[i], &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|r| (!a.is_null(r)).then(|| a.value(r).to_owned()))
        .collect())
}

/// The same text in every row.
pub(crate) fn constant_text(call: &PgCall, value: Option<&str>) -> ArrayRef {
    Arc::new(datafusion::arrow::array::StringArray::from(vec![
        value;
        call.rows
    ]))
}
