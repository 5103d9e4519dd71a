//! `json_get_str(json text, key text, ...) → text`: the value at a path in a
//! JSON document, as text. Strings come back unquoted, numbers and booleans
//! in their JSON spelling, objects and arrays as JSON text; a missing path,
//! JSON `null` or invalid JSON gives NULL. A key that is a whole number also
//! indexes arrays (`json_get_str(traits, 'addresses', '0', 'city')`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonGetStrUdf {
    signature: Signature,
}

impl JsonGetStrUdf {
    pub fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl Default for JsonGetStrUdf {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for JsonGetStrUdf {
    fn name(&self) -> &str {
        "json_get_str"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() < 2 {
            return plan_err!("json_get_str(json, key, ...) needs a document and at least one key");
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let len = if all_scalar { 1 } else { rows };
        let columns: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| cast(&a.to_array(len)?, &DataType::Utf8).map_err(Into::into))
            .collect::<Result<_>>()?;
        let doc = columns[0].as_string::<i32>();
        let keys: Vec<_> = columns[1..].iter().map(|c| c.as_string::<i32>()).collect();
        let mut builder = StringBuilder::with_capacity(len, len * 8);
        let mut path: Vec<&str> = Vec::with_capacity(keys.len());
        for i in 0..len {
            path.clear();
            if doc.is_null(i) || keys.iter().any(|k| k.is_null(i)) {
                builder.append_null();
                continue;
            }
            path.extend(keys.iter().map(|k| k.value(i)));
            builder.append_option(lookup(doc.value(i), &path));
        }
        let out: ArrayRef = Arc::new(builder.finish());
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn lookup(doc: &str, path: &[&str]) -> Option<String> {
    let root: Value = serde_json::from_str(doc).ok()?;
    let mut cur = &root;
    for key in path {
        cur = match cur {
            Value::Object(map) => map.get(*key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match cur {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn walks_objects_and_arrays() {
        let doc = r#"{"device":{"id":"d1","n":3},"a":[{"c":"x"}],"z":null}"#;
        assert_eq!(lookup(doc, &["device", "id"]).as_deref(), Some("d1"));
        assert_eq!(lookup(doc, &["device", "n"]).as_deref(), Some("3"));
        assert_eq!(lookup(doc, &["a", "0", "c"]).as_deref(), Some("x"));
        assert_eq!(lookup(doc, &["z"]), None);
        assert_eq!(lookup(doc, &["nope"]), None);
        assert_eq!(lookup("not json", &["a"]), None);
    }
}
