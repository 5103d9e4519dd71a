//! The one mapping from Arrow types to PostgreSQL types, used by the
//! catalog tables (`pg_attribute.atttypid`, `format_type`) and by the wire
//! encoder, so a column is described and sent as the same type.

use datafusion::arrow::datatypes::DataType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgType {
    pub oid: u32,
    /// `pg_type.typname`.
    pub name: &'static str,
    /// `format_type()` / information_schema spelling.
    pub sql_name: &'static str,
    pub len: i16,
    pub array_oid: u32,
    /// `pg_type.typcategory`.
    pub category: &'static str,
}

const fn t(
    oid: u32,
    name: &'static str,
    sql_name: &'static str,
    len: i16,
    array_oid: u32,
    category: &'static str,
) -> PgType {
    PgType {
        oid,
        name,
        sql_name,
        len,
        array_oid,
        category,
    }
}

pub const BOOL: PgType = t(16, "bool", "boolean", 1, 1000, "B");
pub const BYTEA: PgType = t(17, "bytea", "bytea", -1, 1001, "U");
pub const INT8: PgType = t(20, "int8", "bigint", 8, 1016, "N");
pub const INT2: PgType = t(21, "int2", "smallint", 2, 1005, "N");
pub const INT4: PgType = t(23, "int4", "integer", 4, 1007, "N");
pub const TEXT: PgType = t(25, "text", "text", -1, 1009, "S");
pub const OID: PgType = t(26, "oid", "oid", 4, 1028, "N");
pub const JSON: PgType = t(114, "json", "json", -1, 199, "U");
pub const FLOAT4: PgType = t(700, "float4", "real", 4, 1021, "N");
pub const FLOAT8: PgType = t(701, "float8", "double precision", 8, 1022, "N");
pub const VARCHAR: PgType = t(1043, "varchar", "character varying", -1, 1015, "S");
pub const DATE: PgType = t(1082, "date", "date", 4, 1182, "D");
pub const TIME: PgType = t(1083, "time", "time without time zone", 8, 1183, "D");
pub const TIMESTAMP: PgType = t(
    1114,
    "timestamp",
    "timestamp without time zone",
    8,
    1115,
    "D",
);
pub const TIMESTAMPTZ: PgType = t(
    1184,
    "timestamptz",
    "timestamp with time zone",
    8,
    1185,
    "D",
);
pub const INTERVAL: PgType = t(1186, "interval", "interval", 16, 1187, "T");
pub const NUMERIC: PgType = t(1700, "numeric", "numeric", -1, 1231, "N");
pub const UUID: PgType = t(2950, "uuid", "uuid", 16, 2951, "U");
pub const JSONB: PgType = t(3802, "jsonb", "jsonb", -1, 3807, "U");
pub const NAME: PgType = t(19, "name", "name", 64, 1003, "S");
pub const CHAR: PgType = t(18, "char", "\"char\"", 1, 1002, "Z");

/// Every base type we can produce, for `pg_type`.
pub const ALL: &[PgType] = &[
    BOOL,
    BYTEA,
    CHAR,
    NAME,
    INT8,
    INT2,
    INT4,
    TEXT,
    OID,
    JSON,
    FLOAT4,
    FLOAT8,
    VARCHAR,
    DATE,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    INTERVAL,
    NUMERIC,
    UUID,
    JSONB,
];

/// The PostgreSQL type a column of `dt` is presented as. Lists become the
/// element type's array (see [`array_of`]); anything without a natural
/// counterpart is sent as text.
pub fn pg_type_of(dt: &DataType) -> PgType {
    match dt {
        DataType::Boolean => BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => INT2,
        DataType::Int32 | DataType::UInt16 => INT4,
        // UInt64 goes out as int8 until numeric has a binary encoder.
        DataType::Int64 | DataType::UInt64 => INT8,
        DataType::UInt32 => OID,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => NUMERIC,
        DataType::Float16 | DataType::Float32 => FLOAT4,
        DataType::Float64 => FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => BYTEA,
        DataType::Date32 | DataType::Date64 => DATE,
        DataType::Time32(_) | DataType::Time64(_) => TIME,
        DataType::Timestamp(_, None) => TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => INTERVAL,
        DataType::Dictionary(_, v) => pg_type_of(v),
        _ => TEXT,
    }
}

/// For list columns: the array type's oid and name (`_text`, `text[]`).
pub fn array_of(dt: &DataType) -> Option<(u32, String, String)> {
    match dt {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f) => {
            let e = pg_type_of(f.data_type());
            Some((
                e.array_oid,
                format!("_{}", e.name),
                format!("{}[]", e.sql_name),
            ))
        }
        _ => None,
    }
}

/// `(oid, typname, format_type spelling)` of a column.
pub fn describe(dt: &DataType) -> (u32, String, String) {
    array_of(dt).unwrap_or_else(|| {
        let p = pg_type_of(dt);
        (p.oid, p.name.to_owned(), p.sql_name.to_owned())
    })
}

/// `format_type(oid, typmod)`.
pub fn format_type(oid: u32) -> Option<String> {
    ALL.iter()
        .find(|p| p.oid == oid)
        .map(|p| p.sql_name.to_owned())
        .or_else(|| {
            ALL.iter()
                .find(|p| p.array_oid == oid)
                .map(|p| format!("{}[]", p.sql_name))
        })
}
