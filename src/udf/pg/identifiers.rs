//! `quote_ident(text)` and `parse_ident(text [, strict])`: PostgreSQL's
//! rules for when a name needs double quotes, and for splitting a possibly
//! qualified, possibly quoted name into its parts.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};

use super::{PgCall, PgFn, texts};
use crate::catalog::Catalog;

/// PostgreSQL's reserved key words (and those reserved as names of
/// functions and types): `quote_ident` quotes these.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    vec![
        PgFn::new(
            "quote_ident",
            &[1],
            DataType::Utf8,
            |c| {
                let out: StringArray = texts(c, 0)?
                    .into_iter()
                    .map(|t| t.map(|t| quote_ident(&t)))
                    .collect();
                Ok(Arc::new(out))
            },
            catalog,
        ),
        PgFn::new("parse_ident", &[1, 2], list, parse_ident_fn, catalog),
    ]
}

/// True for the key words PostgreSQL reserves.
pub fn is_reserved(word: &str) -> bool {
    RESERVED.contains(&word)
}

pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !is_reserved(name);
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn parse_ident_fn(c: &PgCall) -> Result<ArrayRef> {
    let strict = match c.args.get(1) {
        Some(_) => texts(c, 1)?,
        None => vec![None; c.rows],
    };
    let mut b = ListBuilder::new(StringBuilder::new());
    for (text, strict) in texts(c, 0)?.into_iter().zip(strict) {
        let Some(text) = text else {
            b.append(false);
            continue;
        };
        let strict = strict.as_deref() != Some("false");
        let parts = parse_ident(&text, strict).map_err(|m| {
            DataFusionError::Execution(format!("string is not a valid identifier: \"{text}\": {m}"))
        })?;
        for p in parts {
            b.values().append_value(p);
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

/// Splits `a."B c".d` into `["a", "B c", "d"]`, folding unquoted parts to
/// lower case; with `strict`, nothing may follow the last part.
pub fn parse_ident(text: &str, strict: bool) -> std::result::Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim_start().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(ch) => part.push(ch),
                    None => return Err("unclosed double quotes".into()),
                }
            }
            if part.is_empty() {
                return Err("quoted identifier must not be empty".into());
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                    part.extend(ch.to_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            if part.is_empty() {
                return Err("no valid identifier".into());
            }
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            Some('.') => {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            None => return Ok(parts),
            Some(_) if strict => return Err("trailing characters".into()),
            Some(_) => return Ok(parts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_quote_and_parse_as_postgres_does() {
        assert_eq!(quote_ident("profiles"), "profiles");
        assert_eq!(quote_ident("Profiles"), "\"Profiles\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1st"), "\"1st\"");
        assert_eq!(
            parse_ident("Segments.\"Big Spenders\"", true).unwrap(),
            vec!["segments", "Big Spenders"]
        );
        assert_eq!(parse_ident(" a . b ", true).unwrap(), vec!["a", "b"]);
        assert!(parse_ident("a.b()", true).is_err());
        assert_eq!(parse_ident("a.b()", false).unwrap(), vec!["a", "b"]);
        assert!(parse_ident("\"a", true).is_err());
        assert!(parse_ident("a.", true).is_err());
    }
}
