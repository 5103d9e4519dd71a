//! `pg_relation_size`, `pg_table_size`, `pg_total_relation_size`,
//! `pg_indexes_size`, `pg_database_size` and `pg_size_pretty`: a table's
//! size is the bytes of its current version's Parquet files (psql's `\dt+`
//! and DBeaver show it); views and raw sources have none.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::Result;

use super::catalog_lookup::{regclass_oid, relation_by_oid};
use super::{PgCall, PgFn, oids};
use crate::catalog::Catalog;

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    let mut fns: Vec<PgFn> = [
        "pg_relation_size",
        "pg_table_size",
        "pg_total_relation_size",
    ]
    .into_iter()
    .map(|name| PgFn::new(name, &[1, 2], DataType::Int64, relation_size, catalog))
    .collect();
    fns.push(PgFn::new(
        "pg_indexes_size",
        &[1],
        DataType::Int64,
        |c| Ok(Arc::new(Int64Array::from(vec![0; c.rows]))),
        catalog,
    ));
    fns.push(PgFn::new(
        "pg_database_size",
        &[1],
        DataType::Int64,
        database_size,
        catalog,
    ));
    fns.push(PgFn::new(
        "pg_size_pretty",
        &[1],
        DataType::Utf8,
        size_pretty,
        catalog,
    ));
    fns
}

/// Takes an OID (`c.oid`, `'t'::regclass`) or a relation name.
fn relation_size(c: &PgCall) -> Result<ArrayRef> {
    let oid_values = if c.args[0].data_type().is_integer() {
        oids(c, 0)?
    } else {
        let resolved = regclass_oid(c)?;
        let resolved = resolved.as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
        resolved.iter().collect()
    };
    let out: Int64Array = oid_values
        .into_iter()
        .map(|o| {
            let r = relation_by_oid(c, o?)?;
            Some(r.pointer.map_or(0, |p| p.bytes as i64))
        })
        .collect();
    Ok(Arc::new(out))
}

fn database_size(c: &PgCall) -> Result<ArrayRef> {
    let total: u64 = c
        .catalog
        .snapshot()
        .relations()
        .filter_map(|r| r.pointer.as_ref().map(|p| p.bytes))
        .sum();
    Ok(Arc::new(Int64Array::from(vec![total as i64; c.rows])))
}

fn size_pretty(c: &PgCall) -> Result<ArrayRef> {
    let sizes = datafusion::arrow::compute::cast(&c.args[0], &DataType::Int64)?;
    let out: StringArray = sizes
        .as_primitive::<Int64Type>()
        .iter()
        .map(|s| s.map(pretty))
        .collect();
    Ok(Arc::new(out))
}

/// PostgreSQL's rounding: bytes below 10 kB, then the largest unit that
/// keeps the number below 20 480, rounded half away from zero.
fn pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    // One extra bit of precision, for the rounding.
    let mut value = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if value.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(value));
        }
        value >>= 10;
    }
    format!("{} PB", half_rounded(value))
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn sizes_print_as_postgres_does() {
        assert_eq!(pretty(0), "0 bytes");
        assert_eq!(pretty(10_239), "10239 bytes");
        assert_eq!(pretty(10_240), "10 kB");
        assert_eq!(pretty(1_000_000), "977 kB");
        assert_eq!(pretty(123_456_789), "118 MB");
        assert_eq!(pretty(-20_000), "-20 kB");
        assert_eq!(pretty(5 * 1024_i64.pow(4)), "5120 GB");
    }
}
