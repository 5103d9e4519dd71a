//! Identity rules as data: one row per identifier type (see the shipped
//! `sql/identity_rules.sql` for the meaning of each column), read from a
//! table so analysts change behaviour with SQL, in git, and rerun.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result};
use regex::Regex;

use super::junk::junk_reason;

/// Columns of a rules table, in the order the resolver reads them.
pub const RULE_COLUMNS: [&str; 8] = [
    "id_type",
    "priority",
    "max_per_profile",
    "max_per_window",
    "window_days",
    "max_links",
    "blocked_values",
    "blocked_pattern",
];

/// Priority of a type no rule mentions.
pub const DEFAULT_PRIORITY: i64 = 100;

#[derive(Debug, Clone)]
pub struct Rule {
    pub priority: i64,
    pub max_per_profile: Option<usize>,
    /// (values, days): at most `values` first seen within any `days` days.
    pub window: Option<(usize, i64)>,
    pub max_links: Option<usize>,
    blocked_values: Vec<String>,
    blocked_pattern: Option<Regex>,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            priority: DEFAULT_PRIORITY,
            max_per_profile: None,
            window: None,
            max_links: None,
            blocked_values: Vec::new(),
            blocked_pattern: None,
        }
    }
}

impl Rule {
    /// Why `value` is not an identifier, if it is not: `(rule, reason)`.
    pub fn blocked(&self, value: &str) -> Option<(&'static str, String)> {
        let trimmed = value.trim();
        let v: std::borrow::Cow<str> =
            if trimmed.bytes().any(|b| b.is_ascii_uppercase()) || !trimmed.is_ascii() {
                trimmed.to_lowercase().into()
            } else {
                trimmed.into()
            };
        if self.blocked_values.iter().any(|b| *b == *v) {
            return Some(("blocked_values", format!("blocked value {value:?}")));
        }
        if let Some(p) = &self.blocked_pattern
            && p.is_match(&v)
        {
            return Some((
                "blocked_pattern",
                format!("matches blocked pattern {}", p.as_str()),
            ));
        }
        junk_reason(value).map(|r| ("junk_values", r.to_owned()))
    }
}

/// Rules by identifier type.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_type: HashMap<String, Rule>,
    default: Rule,
}

impl Rules {
    pub fn get(&self, id_type: &str) -> &Rule {
        self.by_type.get(id_type).unwrap_or(&self.default)
    }

    /// Rules where only `user_id` is limited (one per profile): the
    /// behaviour without a rules table.
    pub fn builtin() -> Self {
        let mut by_type = HashMap::new();
        by_type.insert(
            "user_id".to_owned(),
            Rule {
                priority: 1,
                max_per_profile: Some(1),
                ..Rule::default()
            },
        );
        Self {
            by_type,
            default: Rule::default(),
        }
    }

    /// Reads rules from batches with [`RULE_COLUMNS`] (any integer and
    /// string types); errors name the offending type and column.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut by_type = HashMap::new();
        for b in batches {
            let text = |i: usize| cast(b.column(i), &DataType::Utf8);
            let int = |i: usize| cast(b.column(i), &DataType::Int64);
            let (types, values, patterns) = (text(0)?, text(6)?, text(7)?);
            let (types, values, patterns) = (
                types.as_string::<i32>(),
                values.as_string::<i32>(),
                patterns.as_string::<i32>(),
            );
            let ints = (1..=5)
                .map(int)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let ints: Vec<_> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
            for row in 0..b.num_rows() {
                if types.is_null(row) {
                    return Err(rule_error("?", "id_type must not be NULL"));
                }
                let id_type = types.value(row).to_owned();
                let get = |k: usize| (!ints[k].is_null(row)).then(|| ints[k].value(row));
                let positive = |k: usize, column: &str| -> Result<Option<usize>> {
                    match get(k) {
                        None => Ok(None),
                        Some(v) if v >= 1 => Ok(Some(v as usize)),
                        Some(v) => Err(rule_error(
                            &id_type,
                            &format!("{column} must be at least 1, got {v}"),
                        )),
                    }
                };
                let window = match (positive(2, "max_per_window")?, get(3)) {
                    (None, None) => None,
                    (Some(n), Some(d)) if d >= 1 => Some((n, d)),
                    _ => {
                        return Err(rule_error(
                            &id_type,
                            "max_per_window and window_days (>= 1) go together",
                        ));
                    }
                };
                let blocked_values = if values.is_null(row) {
                    Vec::new()
                } else {
                    values
                        .value(row)
                        .split(',')
                        .map(|v| v.trim().to_lowercase())
                        .filter(|v| !v.is_empty())
                        .collect()
                };
                let blocked_pattern = if patterns.is_null(row) {
                    None
                } else {
                    Some(Regex::new(patterns.value(row)).map_err(|e| {
                        rule_error(
                            &id_type,
                            &format!("blocked_pattern is not a valid regular expression: {e}"),
                        )
                    })?)
                };
                let rule = Rule {
                    priority: get(0).unwrap_or(DEFAULT_PRIORITY),
                    max_per_profile: positive(1, "max_per_profile")?,
                    window,
                    max_links: positive(4, "max_links")?,
                    blocked_values,
                    blocked_pattern,
                };
                if by_type.insert(id_type.clone(), rule).is_some() {
                    return Err(rule_error(&id_type, "the type has two rules"));
                }
            }
        }
        Ok(Self {
            by_type,
            default: Rule::default(),
        })
    }
}

fn rule_error(id_type: &str, message: &str) -> DataFusionError {
    DataFusionError::Plan(format!("identity rule for {id_type}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_values_patterns_and_builtin_junk() {
        let rule = Rule {
            blocked_values: vec!["team@acme.com".into()],
            blocked_pattern: Some(Regex::new("^noreply@").unwrap()),
            ..Rule::default()
        };
        assert_eq!(
            rule.blocked(" TEAM@acme.com").map(|b| b.0),
            Some("blocked_values")
        );
        assert_eq!(
            rule.blocked("noreply@x.com").map(|b| b.0),
            Some("blocked_pattern")
        );
        assert_eq!(rule.blocked("undefined").map(|b| b.0), Some("junk_values"));
        assert!(rule.blocked("ana@x.com").is_none());
    }
}
