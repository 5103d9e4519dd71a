//! `version()`, `current_database()`, `current_schema()`, `current_schemas()`,
//! `current_user`, `session_user`: who and where the session is.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result;

use super::{PgCall, PgFn, constant_text};
use crate::catalog::Catalog;
use crate::catalog::pg_catalog::{DATABASE, OWNER};

/// SQLAlchemy and others parse the major.minor after "PostgreSQL ".
pub const VERSION: &str = concat!(
    "PostgreSQL 16.4 (profiledb ",
    env!("CARGO_PKG_VERSION"),
    ") on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"
);

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    vec![
        PgFn::new(
            "version",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(VERSION))),
            catalog,
        ),
        PgFn::new(
            "current_database",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(DATABASE))),
            catalog,
        ),
        PgFn::new(
            "current_catalog",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(DATABASE))),
            catalog,
        ),
        PgFn::new(
            "current_user",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(OWNER))),
            catalog,
        ),
        PgFn::new(
            "session_user",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(OWNER))),
            catalog,
        ),
        PgFn::new(
            "current_schema",
            &[0],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(&c.config.catalog.default_schema))),
            catalog,
        ),
        PgFn::new("current_schemas", &[1], list, current_schemas, catalog),
    ]
}

fn current_schemas(c: &PgCall) -> Result<ArrayRef> {
    let implicit = datafusion::arrow::compute::cast(&c.args[0], &DataType::Boolean)?;
    let implicit = datafusion::arrow::array::AsArray::as_boolean(&implicit);
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in 0..c.rows {
        if implicit.value(r) {
            b.values().append_value("pg_catalog");
        }
        b.values().append_value(&c.config.catalog.default_schema);
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}
