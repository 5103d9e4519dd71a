//! Errors → PostgreSQL error responses, in one table. Clients branch on the
//! SQLSTATE (42P01 undefined table, 42703 undefined column, …), so every
//! error leaving the server goes through [`to_pg_error`].

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::{CatalogError, Error};

pub const SYNTAX_ERROR: &str = "42601";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const UNDEFINED_FUNCTION: &str = "42883";
pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
pub const UNDEFINED_SCHEMA: &str = "3F000";
pub const DUPLICATE_TABLE: &str = "42P07";
pub const DUPLICATE_SCHEMA: &str = "42P06";
pub const WRONG_OBJECT_TYPE: &str = "42809";
pub const DEPENDENT_OBJECTS: &str = "2BP01";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const DIVISION_BY_ZERO: &str = "22012";
pub const DATA_EXCEPTION: &str = "22000";
pub const UNDEFINED_OBJECT: &str = "42704";
pub const QUERY_CANCELED: &str = "57014";
pub const OUT_OF_MEMORY: &str = "53200";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const INTERNAL_ERROR: &str = "XX000";
pub const SYNTAX_OR_ACCESS: &str = "42000";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const INVALID_CURSOR_NAME: &str = "34000";
pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
pub const DUPLICATE_CURSOR: &str = "42P03";
pub const NO_ACTIVE_TRANSACTION: &str = "25P01";

/// The SQLSTATE and the message to show for an error.
pub fn classify(e: &Error) -> (&'static str, String) {
    match e {
        Error::Catalog(c) => (
            match c {
                CatalogError::UndefinedTable(_) => UNDEFINED_TABLE,
                CatalogError::UndefinedObject(_) => UNDEFINED_OBJECT,
                CatalogError::UndefinedColumn { .. } => UNDEFINED_COLUMN,
                CatalogError::UndefinedCursor(_) => INVALID_CURSOR_NAME,
                CatalogError::DuplicateCursor(_) => DUPLICATE_CURSOR,
                CatalogError::NoActiveTransaction => NO_ACTIVE_TRANSACTION,
                CatalogError::UndefinedSchema(_) => UNDEFINED_SCHEMA,
                CatalogError::UndefinedFunction(_) => UNDEFINED_FUNCTION,
                CatalogError::InvalidDefinition(_) => INVALID_OBJECT_DEFINITION,
                CatalogError::DuplicateTable(_) => DUPLICATE_TABLE,
                CatalogError::DuplicateSchema(_) => DUPLICATE_SCHEMA,
                CatalogError::WrongObjectType { .. } => WRONG_OBJECT_TYPE,
                CatalogError::DependentObjects { .. } => DEPENDENT_OBJECTS,
                CatalogError::ReadOnly(_) => FEATURE_NOT_SUPPORTED,
            },
            c.to_string(),
        ),
        Error::DataFusion(d) => classify_datafusion(d),
        Error::Arrow(a) => classify_arrow(a),
        Error::PermissionDenied(_) => (INSUFFICIENT_PRIVILEGE, e.to_string()),
        Error::QueryCanceled(_) => (QUERY_CANCELED, e.to_string()),
        Error::Copy(_) => (BAD_COPY_FILE_FORMAT, e.to_string()),
        other => (INTERNAL_ERROR, other.to_string()),
    }
}

fn classify_datafusion(e: &DataFusionError) -> (&'static str, String) {
    match e {
        DataFusionError::Context(_, inner) => classify_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => classify_datafusion(inner),
        DataFusionError::Shared(inner) => classify_datafusion(inner),
        DataFusionError::External(inner) => {
            if let Some(ours) = inner.downcast_ref::<Error>() {
                classify(ours)
            } else if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                classify_datafusion(df)
            } else {
                (INTERNAL_ERROR, inner.to_string())
            }
        }
        DataFusionError::SQL(p, _) => (SYNTAX_ERROR, format!("syntax error: {p}")),
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { field, .. } => (
                UNDEFINED_COLUMN,
                format!("column \"{}\" does not exist", field.name),
            ),
            _ => (SYNTAX_OR_ACCESS, strip(&e.to_string())),
        },
        DataFusionError::NotImplemented(m) => (FEATURE_NOT_SUPPORTED, m.clone()),
        DataFusionError::ArrowError(a, _) => classify_arrow(a),
        DataFusionError::ResourcesExhausted(m) => (OUT_OF_MEMORY, m.clone()),
        DataFusionError::Plan(m) => classify_message(m, SYNTAX_OR_ACCESS),
        DataFusionError::Execution(m) => classify_message(m, DATA_EXCEPTION),
        other => classify_message(&other.to_string(), INTERNAL_ERROR),
    }
}

fn classify_arrow(a: &ArrowError) -> (&'static str, String) {
    match a {
        ArrowError::DivideByZero => (DIVISION_BY_ZERO, "division by zero".into()),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            (INVALID_TEXT_REPRESENTATION, m.clone())
        }
        ArrowError::ComputeError(m) => (DATA_EXCEPTION, m.clone()),
        other => (INTERNAL_ERROR, other.to_string()),
    }
}

/// DataFusion reports some conditions only in prose; recognise them.
fn classify_message(m: &str, fallback: &'static str) -> (&'static str, String) {
    if let Some(rest) = m
        .strip_prefix("table '")
        .and_then(|r| r.strip_suffix("' not found"))
    {
        let name = rest.rsplit('.').next().unwrap_or(rest);
        return (
            UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        );
    }
    if m.contains("not found") && m.starts_with("table") {
        return (UNDEFINED_TABLE, m.to_owned());
    }
    if m.contains("Invalid function")
        || m.contains("function") && m.contains("not found")
        || m.contains("Unknown function")
    {
        return (UNDEFINED_FUNCTION, m.to_owned());
    }
    if let Some(rest) = m.split("No field named ").nth(1) {
        let name = rest
            .split(['.', ' '])
            .next()
            .unwrap_or(rest)
            .trim_matches('"');
        return (
            UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        );
    }
    if m.contains("No field named") {
        return (UNDEFINED_COLUMN, m.to_owned());
    }
    if m.contains("Divide by zero") || m.contains("division by zero") {
        return (DIVISION_BY_ZERO, "division by zero".into());
    }
    if m.contains("unrecognized configuration parameter") {
        return (UNDEFINED_OBJECT, m.to_owned());
    }
    if m.contains("Cannot cast") || m.contains("Cast error") {
        return (INVALID_TEXT_REPRESENTATION, m.to_owned());
    }
    (fallback, m.to_owned())
}

fn strip(m: &str) -> String {
    m.trim_start_matches("Schema error: ").to_owned()
}

pub fn error_info(code: &str, message: String) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)
}

pub fn to_pg_error(e: &Error) -> PgWireError {
    let (code, message) = classify(e);
    PgWireError::UserError(Box::new(error_info(code, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_get_their_sqlstate() {
        let missing = Error::DataFusion(DataFusionError::Plan(
            "table 'profiledb.public.nope' not found".into(),
        ));
        assert_eq!(
            classify(&missing),
            (UNDEFINED_TABLE, "relation \"nope\" does not exist".into())
        );
        let external = Error::DataFusion(DataFusionError::External(Box::new(Error::Catalog(
            CatalogError::UndefinedTable("x".into()),
        ))));
        assert_eq!(classify(&external).0, UNDEFINED_TABLE);
        let ni = Error::DataFusion(DataFusionError::NotImplemented("x".into()));
        assert_eq!(classify(&ni).0, FEATURE_NOT_SUPPORTED);
    }
}
