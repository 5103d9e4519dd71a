//! `json_build_object(k1, v1, …)` and `json_build_array(v1, …)`: JSON text
//! built from SQL values as PostgreSQL builds it — numbers and booleans
//! stay JSON numbers and booleans, NULL is `null`, arrays are JSON arrays,
//! everything else is its text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuild {
    name: &'static str,
    /// Keys and values alternate (`json_build_object`).
    object: bool,
    signature: Signature,
}

impl JsonBuild {
    pub fn object() -> Self {
        Self::new("json_build_object", true)
    }

    pub fn array() -> Self {
        Self::new("json_build_array", false)
    }

    fn new(name: &'static str, object: bool) -> Self {
        Self {
            name,
            object,
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Nullary,
                    datafusion::logical_expr::TypeSignature::VariadicAny,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for JsonBuild {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.object && !args.args.len().is_multiple_of(2) {
            return exec_err!("argument list must have even number of elements");
        }
        super::row_wise(&args.args, args.number_rows, |columns, rows| {
            self.build(&columns, rows)
        })
    }
}

impl JsonBuild {
    /// The JSON text of each row.
    fn build(&self, columns: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        // PostgreSQL's spacing: `{"a" : 1, "b" : [1,2]}`, `[1, "a"]`.
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let text = if self.object {
                let mut fields = Vec::with_capacity(columns.len() / 2);
                for pair in columns.chunks(2) {
                    if is_null(&pair[0], row) {
                        return exec_err!("null value not allowed for object key");
                    }
                    let key = Value::String(array_value_to_string(&pair[0], row)?);
                    fields.push(format!("{key} : {}", to_json(&pair[1], row)?));
                }
                format!("{{{}}}", fields.join(", "))
            } else {
                let values = columns
                    .iter()
                    .map(|c| to_json(c, row).map(|v| v.to_string()))
                    .collect::<Result<Vec<_>>>()?;
                format!("[{}]", values.join(", "))
            };
            out.append_value(text);
        }
        Ok(Arc::new(out.finish()))
    }
}

/// Row `row` of `array` as a JSON value.
fn to_json(array: &ArrayRef, row: usize) -> Result<Value> {
    if is_null(array, row) {
        return Ok(Value::Null);
    }
    Ok(match ScalarValue::try_from_array(array, row)? {
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Int8(Some(v)) => v.into(),
        ScalarValue::Int16(Some(v)) => v.into(),
        ScalarValue::Int32(Some(v)) => v.into(),
        ScalarValue::Int64(Some(v)) => v.into(),
        ScalarValue::UInt8(Some(v)) => v.into(),
        ScalarValue::UInt16(Some(v)) => v.into(),
        ScalarValue::UInt32(Some(v)) => v.into(),
        ScalarValue::UInt64(Some(v)) => v.into(),
        ScalarValue::Float32(Some(v)) => number(f64::from(v)),
        ScalarValue::Float64(Some(v)) => number(v),
        ScalarValue::List(l) => list(&l.value(0))?,
        ScalarValue::LargeList(l) => list(&l.value(0))?,
        ScalarValue::FixedSizeList(l) => list(&l.value(0))?,
        _ => Value::String(array_value_to_string(array, row)?),
    })
}

/// NULL, also in an array of type Null (which keeps no validity bits).
fn is_null(array: &ArrayRef, row: usize) -> bool {
    array.data_type() == &DataType::Null || array.is_null(row)
}

fn list(values: &ArrayRef) -> Result<Value> {
    (0..values.len())
        .map(|i| to_json(values, i))
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

/// A finite float as a JSON number; NaN and infinities as PostgreSQL
/// writes them, as text.
fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}
