//! Type functions: `format_type`, `pg_type_is_visible` (and
//! `pg_function_is_visible`),
//! `pg_encoding_to_char`, and the target of `'name'::regtype`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;

use super::{PgCall, PgFn, constant_text, oids, texts};
use crate::catalog::Catalog;
use crate::catalog::pg_types::{ALL, format_type};

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    vec![
        PgFn::new("format_type", &[1, 2], DataType::Utf8, format, catalog),
        PgFn::new("regtype_oid", &[1], DataType::UInt32, regtype_oid, catalog),
        PgFn::new(
            "pg_type_is_visible",
            &[1],
            DataType::Boolean,
            |c| Ok(Arc::new(BooleanArray::from(vec![true; c.rows]))),
            catalog,
        ),
        // The functions of pg_proc are the type I/O functions, whose
        // signatures clients only print (psql's \df).
        PgFn::new(
            "pg_get_function_sqlbody",
            &[1],
            DataType::Utf8,
            |c| Ok(super::constant_text(c, None)),
            catalog,
        ),
        PgFn::new(
            "pg_get_function_result",
            &[1],
            DataType::Utf8,
            |c| Ok(super::constant_text(c, None)),
            catalog,
        ),
        PgFn::new(
            "pg_get_function_arguments",
            &[1],
            DataType::Utf8,
            |c| Ok(super::constant_text(c, Some(""))),
            catalog,
        ),
        PgFn::new(
            "pg_get_function_identity_arguments",
            &[1],
            DataType::Utf8,
            |c| Ok(super::constant_text(c, Some(""))),
            catalog,
        ),
        // Every function here is in pg_catalog, which is always searched.
        PgFn::new(
            "pg_function_is_visible",
            &[1],
            DataType::Boolean,
            |c| Ok(Arc::new(BooleanArray::from(vec![true; c.rows]))),
            catalog,
        ),
        PgFn::new(
            "pg_encoding_to_char",
            &[1],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some("UTF8"))),
            catalog,
        ),
        PgFn::new(
            "pg_get_expr",
            &[2, 3],
            DataType::Utf8,
            |c| Ok(constant_text(c, None)),
            catalog,
        ),
        PgFn::new(
            "pg_get_constraintdef",
            &[1, 2],
            DataType::Utf8,
            |c| Ok(constant_text(c, None)),
            catalog,
        ),
        PgFn::new(
            "pg_get_indexdef",
            &[1, 3],
            DataType::Utf8,
            |c| Ok(constant_text(c, None)),
            catalog,
        ),
        // No table is partitioned: NULL, as PostgreSQL answers for those.
        PgFn::new(
            "pg_get_partkeydef",
            &[1],
            DataType::Utf8,
            |c| Ok(constant_text(c, None)),
            catalog,
        ),
        // Scans of an index: there are no indexes.
        PgFn::new(
            "pg_stat_get_numscans",
            &[1],
            DataType::Int64,
            |c| {
                Ok(Arc::new(datafusion::arrow::array::Int64Array::from(
                    vec![0; c.rows],
                )))
            },
            catalog,
        ),
    ]
}

fn format(c: &PgCall) -> Result<ArrayRef> {
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .map(|o| o.map(|o| format_type(o).unwrap_or_else(|| "???".to_owned())))
        .collect();
    Ok(Arc::new(out))
}

fn regtype_oid(c: &PgCall) -> Result<ArrayRef> {
    let out: UInt32Array = texts(c, 0)?
        .into_iter()
        .map(|t| {
            let t = t?.to_lowercase();
            let t = t.strip_prefix("pg_catalog.").unwrap_or(&t).to_owned();
            ALL.iter()
                .find(|p| p.name == t || p.sql_name == t)
                .map(|p| p.oid)
                .or_else(|| {
                    ALL.iter()
                        .find(|p| format!("{}[]", p.sql_name) == t || format!("_{}", p.name) == t)
                        .map(|p| p.array_oid)
                })
        })
        .collect();
    Ok(Arc::new(out))
}
