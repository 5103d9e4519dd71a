//! `normalize_phone(text [, default_country text]) → text`: a phone number in
//! E.164 (`+14155550100`), or NULL when it cannot be one.
//!
//! Punctuation, spaces and extensions are dropped; `00` becomes `+`; numbers
//! without a country code get the default country's (ISO 3166 alpha-2,
//! default `US`), dropping a national trunk `0` where that country uses one.
//! The result must have 8 to 15 digits, as E.164 requires.

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use std::sync::Arc;

use super::map_strings;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizePhoneUdf {
    signature: Signature,
}

impl NormalizePhoneUdf {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::String(1), TypeSignature::String(2)],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for NormalizePhoneUdf {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for NormalizePhoneUdf {
    fn name(&self) -> &str {
        "normalize_phone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.get(1) {
            None => map_strings(&args.args[0], args.number_rows, |s, out| {
                normalize_phone(s, "US", out)
            }),
            Some(ColumnarValue::Scalar(country)) => {
                let country = match country {
                    ScalarValue::Utf8(c) | ScalarValue::LargeUtf8(c) | ScalarValue::Utf8View(c) => {
                        c.clone()
                    }
                    other => {
                        return exec_err!("normalize_phone: country must be text, got {other}");
                    }
                };
                let Some(country) = country else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                if calling_code(&country).is_none() {
                    return exec_err!("normalize_phone: unknown country code {country:?}");
                }
                map_strings(&args.args[0], args.number_rows, |s, out| {
                    normalize_phone(s, &country, out)
                })
            }
            Some(ColumnarValue::Array(countries)) => {
                let numbers = args.args[0].to_array(args.number_rows)?;
                let numbers = cast(&numbers, &DataType::Utf8)?;
                let countries = cast(countries, &DataType::Utf8)?;
                let (numbers, countries) =
                    (numbers.as_string::<i32>(), countries.as_string::<i32>());
                let mut builder = StringBuilder::with_capacity(numbers.len(), numbers.len() * 12);
                let mut buf = String::new();
                for i in 0..numbers.len() {
                    buf.clear();
                    if numbers.is_null(i) || countries.is_null(i) {
                        builder.append_null();
                    } else if normalize_phone(numbers.value(i), countries.value(i), &mut buf) {
                        builder.append_value(&buf);
                    } else {
                        builder.append_null();
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(builder.finish())))
            }
        }
    }
}

/// Country calling code and whether national numbers start with a trunk `0`.
fn calling_code(country: &str) -> Option<(&'static str, bool)> {
    let code = match country.trim().to_ascii_uppercase().as_str() {
        "US" | "USA" | "UNITED STATES" | "CA" | "CAN" | "CANADA" => ("1", false),
        "GB" | "UK" | "GBR" | "UNITED KINGDOM" => ("44", true),
        "DE" | "DEU" | "GERMANY" => ("49", true),
        "FR" | "FRA" | "FRANCE" => ("33", true),
        "ES" | "ESP" | "SPAIN" => ("34", false),
        "IT" | "ITA" | "ITALY" => ("39", false),
        "NL" | "NLD" | "NETHERLANDS" => ("31", true),
        "BE" => ("32", true),
        "PT" | "PRT" | "PORTUGAL" => ("351", false),
        "IE" => ("353", true),
        "SE" => ("46", true),
        "PL" | "POL" | "POLAND" => ("48", false),
        "BR" => ("55", true),
        "MX" => ("52", false),
        "IN" => ("91", true),
        "AU" => ("61", true),
        "JP" => ("81", true),
        "CN" => ("86", true),
        "ZA" => ("27", true),
        _ => return None,
    };
    Some(code)
}

/// Writes the E.164 form of `raw` into `out`; false when it cannot be one.
pub fn normalize_phone(raw: &str, default_country: &str, out: &mut String) -> bool {
    let s = raw.trim();
    // Drop an extension: "x123", "ext. 123", "#123".
    let lower = s.to_ascii_lowercase();
    let cut = [lower.find("ext"), lower.find(['x', '#'])]
        .into_iter()
        .flatten()
        .min();
    let s = match cut {
        Some(i) => &s[..i],
        None => s,
    };
    let international = s.trim_start().starts_with('+');
    let mut digits = String::with_capacity(16);
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !(c.is_whitespace() || "+-().,/".contains(c)) {
            return false;
        }
    }
    let number = if international {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else {
        let Some((code, trunk)) = calling_code(default_country) else {
            return false;
        };
        let national = if trunk {
            digits.strip_prefix('0').unwrap_or(&digits)
        } else {
            &digits
        };
        if code == "1" && national.len() == 11 && national.starts_with('1') {
            national.to_owned()
        } else if code == "1" && national.len() != 10 {
            return false;
        } else {
            format!("{code}{national}")
        }
    };
    if !(8..=15).contains(&number.len())
        || number.starts_with('0')
        || number.bytes().all(|b| b == number.as_bytes()[0])
    {
        return false;
    }
    out.push('+');
    out.push_str(&number);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, c: &str) -> Option<String> {
        let mut out = String::new();
        normalize_phone(s, c, &mut out).then_some(out)
    }

    #[test]
    fn spellings_of_one_number_meet() {
        for s in [
            "(415) 555-0100",
            "415.555.0100",
            "+1 415 555 0100",
            "1-415-555-0100",
            "001 415 555 0100",
            "415-555-0100 ext. 12",
        ] {
            assert_eq!(n(s, "US").as_deref(), Some("+14155550100"), "{s:?}");
        }
        assert_eq!(n("07700 900123", "GB").as_deref(), Some("+447700900123"));
    }

    #[test]
    fn junk_is_null() {
        for s in ["", "n/a", "555-0100", "0000000000", "1111111111", "abc"] {
            assert_eq!(n(s, "US"), None, "{s:?}");
        }
    }
}
