//! `information_schema` as PostgreSQL answers it, built from our catalog:
//! PostgreSQL type names (`data_type` = `bigint`, `text`, `timestamp with
//! time zone`, `ARRAY`; `udt_name` = `int8`, `_text`), `is_nullable`,
//! `is_identity`, table types (`BASE TABLE`, `VIEW`, `LOCAL TEMPORARY`).
//! dbt reads `columns` to learn a relation's columns; reporting tools read
//! `tables`, `columns` and `schemata`. Constraint, routine and privilege
//! tables exist with PostgreSQL's columns and no rows: nothing here has
//! keys, user functions or grants.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result;

use super::pg_catalog::{self, DATABASE, OWNER, i4, null, t};
use super::pg_types::{describe, pg_type_of};
use super::{Catalog, RelationKind, SYSTEM_SCHEMAS, TEMP_SCHEMA_PREFIX};

const T: DataType = DataType::Utf8;
const I: DataType = DataType::Int32;

/// Every table, with its columns.
const TABLES: &[(&str, &[(&str, DataType)])] = &[
    (
        "schemata",
        &[
            ("catalog_name", T),
            ("schema_name", T),
            ("schema_owner", T),
            ("default_character_set_catalog", T),
            ("default_character_set_schema", T),
            ("default_character_set_name", T),
            ("sql_path", T),
        ],
    ),
    (
        "tables",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("table_type", T),
            ("self_referencing_column_name", T),
            ("reference_generation", T),
            ("user_defined_type_catalog", T),
            ("user_defined_type_schema", T),
            ("user_defined_type_name", T),
            ("is_insertable_into", T),
            ("is_typed", T),
            ("commit_action", T),
        ],
    ),
    (
        "columns",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("ordinal_position", I),
            ("column_default", T),
            ("is_nullable", T),
            ("data_type", T),
            ("character_maximum_length", I),
            ("character_octet_length", I),
            ("numeric_precision", I),
            ("numeric_precision_radix", I),
            ("numeric_scale", I),
            ("datetime_precision", I),
            ("interval_type", T),
            ("interval_precision", I),
            ("character_set_catalog", T),
            ("character_set_schema", T),
            ("character_set_name", T),
            ("collation_catalog", T),
            ("collation_schema", T),
            ("collation_name", T),
            ("domain_catalog", T),
            ("domain_schema", T),
            ("domain_name", T),
            ("udt_catalog", T),
            ("udt_schema", T),
            ("udt_name", T),
            ("scope_catalog", T),
            ("scope_schema", T),
            ("scope_name", T),
            ("maximum_cardinality", I),
            ("dtd_identifier", T),
            ("is_self_referencing", T),
            ("is_identity", T),
            ("identity_generation", T),
            ("identity_start", T),
            ("identity_increment", T),
            ("identity_maximum", T),
            ("identity_minimum", T),
            ("identity_cycle", T),
            ("is_generated", T),
            ("generation_expression", T),
            ("is_updatable", T),
        ],
    ),
    (
        "views",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("view_definition", T),
            ("check_option", T),
            ("is_updatable", T),
            ("is_insertable_into", T),
            ("is_trigger_updatable", T),
            ("is_trigger_deletable", T),
            ("is_trigger_insertable_into", T),
        ],
    ),
    (
        "table_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("constraint_type", T),
            ("is_deferrable", T),
            ("initially_deferred", T),
            ("enforced", T),
            ("nulls_distinct", T),
        ],
    ),
    (
        "key_column_usage",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("ordinal_position", I),
            ("position_in_unique_constraint", I),
        ],
    ),
    (
        "referential_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("unique_constraint_catalog", T),
            ("unique_constraint_schema", T),
            ("unique_constraint_name", T),
            ("match_option", T),
            ("update_rule", T),
            ("delete_rule", T),
        ],
    ),
    (
        "constraint_column_usage",
        &[
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("column_name", T),
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
        ],
    ),
    (
        "check_constraints",
        &[
            ("constraint_catalog", T),
            ("constraint_schema", T),
            ("constraint_name", T),
            ("check_clause", T),
        ],
    ),
    (
        "routines",
        &[
            ("specific_catalog", T),
            ("specific_schema", T),
            ("specific_name", T),
            ("routine_catalog", T),
            ("routine_schema", T),
            ("routine_name", T),
            ("routine_type", T),
            ("data_type", T),
            ("type_udt_name", T),
            ("external_language", T),
            ("routine_definition", T),
        ],
    ),
    (
        "sequences",
        &[
            ("sequence_catalog", T),
            ("sequence_schema", T),
            ("sequence_name", T),
            ("data_type", T),
            ("numeric_precision", I),
            ("numeric_precision_radix", I),
            ("numeric_scale", I),
            ("start_value", T),
            ("minimum_value", T),
            ("maximum_value", T),
            ("increment", T),
            ("cycle_option", T),
        ],
    ),
    (
        "triggers",
        &[
            ("trigger_catalog", T),
            ("trigger_schema", T),
            ("trigger_name", T),
            ("event_manipulation", T),
            ("event_object_catalog", T),
            ("event_object_schema", T),
            ("event_object_table", T),
            ("action_order", I),
            ("action_condition", T),
            ("action_statement", T),
            ("action_orientation", T),
            ("action_timing", T),
        ],
    ),
    (
        "table_privileges",
        &[
            ("grantor", T),
            ("grantee", T),
            ("table_catalog", T),
            ("table_schema", T),
            ("table_name", T),
            ("privilege_type", T),
            ("is_grantable", T),
            ("with_hierarchy", T),
        ],
    ),
];

/// A relation as information_schema lists it: `(schema, name, type,
/// columns, view definition)`.
struct Listed {
    schema: String,
    name: String,
    table_type: &'static str,
    columns: Vec<Field>,
    view_definition: Option<String>,
}

#[derive(Debug)]
pub struct InformationSchema {
    catalog: Arc<Catalog>,
}

impl InformationSchema {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// Our relations, then pg_catalog's tables and information_schema's
    /// own views, as PostgreSQL lists them.
    fn relations(&self) -> Vec<Listed> {
        let snap = self.catalog.snapshot();
        let mut out: Vec<Listed> = snap
            .relations()
            .map(|r| Listed {
                schema: r.schema.clone(),
                name: r.name.clone(),
                table_type: match r.kind {
                    RelationKind::View => "VIEW",
                    _ if r.schema.starts_with(TEMP_SCHEMA_PREFIX) => "LOCAL TEMPORARY",
                    _ => "BASE TABLE",
                },
                columns: r
                    .arrow_schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect(),
                view_definition: r.view.as_ref().map(|v| v.sql.clone()),
            })
            .collect();
        let system =
            pg_catalog::tables()
                .map(|(name, columns)| ("pg_catalog", "BASE TABLE", name, columns))
                .chain(TABLES.iter().map(|(name, columns)| {
                    ("information_schema", "VIEW", *name, columns.to_vec())
                }));
        for (schema, table_type, name, columns) in system {
            out.push(Listed {
                schema: schema.to_owned(),
                name: name.to_owned(),
                table_type,
                columns: columns
                    .into_iter()
                    .map(|(n, t)| Field::new(n, t, true))
                    .collect(),
                view_definition: None,
            });
        }
        out
    }

    fn rows(&self, table: &str) -> Vec<Vec<ScalarValue>> {
        match table {
            "schemata" => {
                let snap = self.catalog.snapshot();
                snap.schemas
                    .keys()
                    .map(String::as_str)
                    .chain(SYSTEM_SCHEMAS)
                    .map(|s| vec![t(DATABASE), t(s), t(OWNER), null(), null(), null(), null()])
                    .collect()
            }
            "tables" => self
                .relations()
                .into_iter()
                .map(|r| {
                    let insertable = if r.table_type == "VIEW" { "NO" } else { "YES" };
                    vec![
                        t(DATABASE),
                        t(&r.schema),
                        t(&r.name),
                        t(r.table_type),
                        null(),
                        null(),
                        null(),
                        null(),
                        null(),
                        t(insertable),
                        t("NO"),
                        null(),
                    ]
                })
                .collect(),
            "columns" => self
                .relations()
                .into_iter()
                .flat_map(|r| {
                    r.columns
                        .iter()
                        .enumerate()
                        .map(|(i, f)| column_row(&r, i, f))
                        .collect::<Vec<_>>()
                })
                .collect(),
            "views" => self
                .relations()
                .into_iter()
                .filter_map(|r| {
                    let definition = r.view_definition?;
                    Some(vec![
                        t(DATABASE),
                        t(&r.schema),
                        t(&r.name),
                        t(&definition),
                        t("NONE"),
                        t("NO"),
                        t("NO"),
                        t("NO"),
                        t("NO"),
                        t("NO"),
                    ])
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One row of `columns`, in PostgreSQL's terms.
fn column_row(r: &Listed, i: usize, f: &Field) -> Vec<ScalarValue> {
    let (_, udt_name, sql_name) = describe(f.data_type());
    let is_array = udt_name.starts_with('_');
    let data_type = if is_array {
        "ARRAY".to_owned()
    } else {
        sql_name
    };
    let base = pg_type_of(f.data_type()).name;
    let (precision, radix, scale) = match (is_array, f.data_type()) {
        (true, _) => (None, None, None),
        (_, DataType::Decimal128(p, s) | DataType::Decimal256(p, s)) => {
            (Some(i32::from(*p)), Some(10), Some(i32::from(*s)))
        }
        _ => match base {
            "int2" => (Some(16), Some(2), Some(0)),
            "int4" => (Some(32), Some(2), Some(0)),
            "int8" => (Some(64), Some(2), Some(0)),
            "float4" => (Some(24), Some(2), None),
            "float8" => (Some(53), Some(2), None),
            _ => (None, None, None),
        },
    };
    let datetime_precision = match base {
        "date" => Some(0),
        "timestamp" | "timestamptz" | "time" | "interval" if !is_array => Some(6),
        _ => None,
    };
    let mut row = vec![
        t(DATABASE),
        t(&r.schema),
        t(&r.name),
        t(f.name()),
        i4(i as i32 + 1),
        null(),
        t(if f.is_nullable() { "YES" } else { "NO" }),
        t(&data_type),
        null(),
        null(),
        opt(precision),
        opt(radix),
        opt(scale),
        opt(datetime_precision),
    ];
    // interval_type … domain_name: none
    row.extend((0..11).map(|_| null()));
    row.extend([t(DATABASE), t("pg_catalog"), t(&udt_name)]);
    // scope_*, maximum_cardinality
    row.extend((0..4).map(|_| null()));
    row.extend([t(&(i + 1).to_string()), t("NO"), t("NO")]);
    // identity_generation … identity_cycle
    row.extend((0..6).map(|_| null()));
    row.extend([
        t("NEVER"),
        null(),
        t(if r.table_type == "VIEW" { "NO" } else { "YES" }),
    ]);
    row
}

fn opt(v: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(v)
}

#[async_trait::async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|(n, _)| (*n).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((_, columns)) = TABLES.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        pg_catalog::memory_table(columns, self.rows(name)).map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.iter().any(|(n, _)| *n == name)
    }
}
