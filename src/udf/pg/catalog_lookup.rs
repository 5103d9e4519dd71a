//! Functions that look objects up by OID or name: `pg_table_is_visible`,
//! `pg_get_userbyid`, `pg_get_viewdef`, `obj_description`, `col_description`,
//! and the targets of `::regclass` / `::regnamespace` casts.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};

use super::{PgCall, PgFn, constant_text, oids, texts};
use crate::catalog::pg_catalog::{OWNER, SCHEMA_DESCRIPTIONS};
use crate::catalog::{Catalog, Relation, oid};
use crate::error::{CatalogError, Error};

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    vec![
        PgFn::new(
            "pg_table_is_visible",
            &[1],
            DataType::Boolean,
            table_is_visible,
            catalog,
        ),
        PgFn::new(
            "pg_get_userbyid",
            &[1],
            DataType::Utf8,
            |c| Ok(constant_text(c, Some(OWNER))),
            catalog,
        ),
        PgFn::new(
            "pg_get_viewdef",
            &[1, 2],
            DataType::Utf8,
            get_viewdef,
            catalog,
        ),
        PgFn::new(
            "obj_description",
            &[1, 2],
            DataType::Utf8,
            obj_description,
            catalog,
        ),
        PgFn::new(
            "col_description",
            &[2],
            DataType::Utf8,
            col_description,
            catalog,
        ),
        PgFn::new(
            "shobj_description",
            &[2],
            DataType::Utf8,
            |c| Ok(constant_text(c, None)),
            catalog,
        ),
        PgFn::new(
            "pg_is_other_temp_schema",
            &[2],
            DataType::Boolean,
            is_other_temp_schema,
            catalog,
        ),
        PgFn::new(
            "regclass_oid",
            &[1],
            DataType::UInt32,
            regclass_oid,
            catalog,
        ),
        PgFn::new(
            "regclass_name",
            &[1],
            DataType::Utf8,
            regclass_name,
            catalog,
        ),
        PgFn::new(
            "regnamespace_oid",
            &[1],
            DataType::UInt32,
            regnamespace_oid,
            catalog,
        ),
        PgFn::new(
            "regnamespace_name",
            &[1],
            DataType::Utf8,
            regnamespace_name,
            catalog,
        ),
        PgFn::new(
            "regproc_name",
            &[1],
            DataType::Utf8,
            |c| Ok(Arc::new(StringArray::from(texts(c, 0)?))),
            catalog,
        ),
    ]
}

pub(super) fn relation_by_oid(c: &PgCall, oid_value: u32) -> Option<Relation> {
    c.catalog
        .snapshot()
        .relations()
        .find(|r| oid::relation_oid(&r.schema, &r.name) == oid_value)
        .cloned()
}

fn table_is_visible(c: &PgCall) -> Result<ArrayRef> {
    let default = &c.config.catalog.default_schema;
    let out: BooleanArray = oids(c, 0)?
        .into_iter()
        .map(|o| {
            let o = o?;
            Some(match relation_by_oid(c, o) {
                Some(r) => &r.schema == default || r.schema == "pg_catalog",
                None => true,
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn get_viewdef(c: &PgCall) -> Result<ArrayRef> {
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .map(|o| relation_by_oid(c, o?).and_then(|r| r.view.map(|v| v.sql)))
        .collect();
    Ok(Arc::new(out))
}

fn obj_description(c: &PgCall) -> Result<ArrayRef> {
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .map(|o| {
            let o = o?;
            let schema = SCHEMA_DESCRIPTIONS
                .iter()
                .find(|(s, _)| oid::namespace_oid(s) == o);
            match schema {
                Some((_, text)) => Some((*text).to_owned()),
                None => relation_by_oid(c, o).and_then(|r| r.comments()?.relation.clone()),
            }
        })
        .collect();
    Ok(Arc::new(out))
}

/// `col_description(table oid, column number)`, numbered from 1 as
/// `pg_attribute.attnum`.
fn col_description(c: &PgCall) -> Result<ArrayRef> {
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .zip(oids(c, 1)?)
        .map(|(o, n)| {
            let r = relation_by_oid(c, o?)?;
            let field = r.arrow_schema.fields().get(n?.checked_sub(1)? as usize)?;
            r.comments()?.columns.get(field.name()).cloned()
        })
        .collect();
    Ok(Arc::new(out))
}

/// `'name'::regclass`: resolves `name` or `schema.name` like PostgreSQL,
/// failing with "relation does not exist" (42P01).
pub(super) fn regclass_oid(c: &PgCall) -> Result<ArrayRef> {
    let snap = c.catalog.snapshot();
    let default = &c.config.catalog.default_schema;
    let out = texts(c, 0)?
        .into_iter()
        .map(|t| {
            let Some(t) = t else { return Ok(None) };
            let unquoted = t.replace('"', "");
            let (schema, name) = match unquoted.split_once('.') {
                Some((s, n)) => (s.to_owned(), n.to_owned()),
                None => (default.clone(), unquoted.clone()),
            };
            let name = if t.contains('"') {
                name
            } else {
                name.to_lowercase()
            };
            let found = snap.relation(&schema, &name).or_else(|| {
                (!unquoted.contains('.'))
                    .then(|| snap.relation("public", &name))
                    .flatten()
            });
            let catalog_table = (schema == "pg_catalog" || !unquoted.contains('.'))
                && crate::catalog::pg_catalog::is_catalog_table(&name);
            match found {
                Some(r) => Ok(Some(oid::relation_oid(&r.schema, &r.name))),
                None if catalog_table => Ok(Some(oid::relation_oid("pg_catalog", &name))),
                None => Err(DataFusionError::External(Box::new(Error::Catalog(
                    CatalogError::UndefinedTable(t),
                )))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(UInt32Array::from(out)))
}

fn regclass_name(c: &PgCall) -> Result<ArrayRef> {
    let default = &c.config.catalog.default_schema;
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .map(|o| {
            let o = o?;
            Some(match relation_by_oid(c, o) {
                Some(r) if &r.schema == default => r.name,
                Some(r) => format!("{}.{}", r.schema, r.name),
                None => o.to_string(),
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn regnamespace_oid(c: &PgCall) -> Result<ArrayRef> {
    let out: UInt32Array = texts(c, 0)?
        .into_iter()
        .map(|t| t.map(|t| oid::namespace_oid(&t)))
        .collect();
    Ok(Arc::new(out))
}

fn regnamespace_name(c: &PgCall) -> Result<ArrayRef> {
    let snap = c.catalog.snapshot();
    let out: StringArray = oids(c, 0)?
        .into_iter()
        .map(|o| {
            let o = o?;
            snap.schemas
                .keys()
                .map(String::as_str)
                .chain(crate::catalog::SYSTEM_SCHEMAS)
                .find(|s| oid::namespace_oid(s) == o)
                .map(str::to_owned)
                .or_else(|| Some(o.to_string()))
        })
        .collect();
    Ok(Arc::new(out))
}

/// `pg_is_other_temp_schema(namespace oid)`, given the session's own
/// temporary schema's OID as the second argument (see
/// `engine::pg_dialect::substitute_session_values`).
fn is_other_temp_schema(c: &PgCall) -> Result<ArrayRef> {
    let snap = c.catalog.snapshot();
    let out: BooleanArray = oids(c, 0)?
        .into_iter()
        .zip(oids(c, 1)?)
        .map(|(o, own)| {
            let o = o?;
            Some(
                o != own?
                    && snap.schemas.keys().any(|s| {
                        s.starts_with(crate::catalog::TEMP_SCHEMA_PREFIX)
                            && oid::namespace_oid(s) == o
                    }),
            )
        })
        .collect();
    Ok(Arc::new(out))
}
