//! `pg_catalog`, answered from our real catalog on every lookup: user
//! schemas, tables, views and columns appear in `pg_namespace`, `pg_class`,
//! `pg_attribute` and friends with stable OIDs (see [`super::oid`]). Tables
//! that describe features we do not have (indexes, triggers, policies, …)
//! exist with PostgreSQL's columns and no rows, so client introspection
//! queries plan and return the truthful empty answer.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result;

use super::backends::State;
use super::oid::{self, DATABASE_OID, OWNER_OID};
use super::pg_types::{self, describe};
use super::{Catalog, RelationKind, SYSTEM_SCHEMAS};

/// The role every object belongs to, and the database name.
pub const OWNER: &str = "profiledb";
pub const DATABASE: &str = "profiledb";

const O: DataType = DataType::UInt32;
const T: DataType = DataType::Utf8;
const B: DataType = DataType::Boolean;
const I2: DataType = DataType::Int16;
const I4: DataType = DataType::Int32;
const F4: DataType = DataType::Float32;
const I8: DataType = DataType::Int64;
/// `timestamp with time zone` (see [`column_type`]).
const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// Table name → columns, for every pg_catalog table we answer.
const TABLES: &[(&str, &[(&str, DataType)])] = &[
    (
        "pg_namespace",
        &[("oid", O), ("nspname", T), ("nspowner", O), ("nspacl", T)],
    ),
    (
        "pg_class",
        &[
            ("oid", O),
            ("relname", T),
            ("relnamespace", O),
            ("reltype", O),
            ("reloftype", O),
            ("relowner", O),
            ("relam", O),
            ("relfilenode", O),
            ("reltablespace", O),
            ("relpages", I4),
            ("reltuples", F4),
            ("relallvisible", I4),
            ("reltoastrelid", O),
            ("relhasindex", B),
            ("relisshared", B),
            ("relpersistence", T),
            ("relkind", T),
            ("relnatts", I2),
            ("relchecks", I2),
            ("relhasrules", B),
            ("relhastriggers", B),
            ("relhassubclass", B),
            ("relrowsecurity", B),
            ("relforcerowsecurity", B),
            ("relispopulated", B),
            ("relreplident", T),
            ("relispartition", B),
            ("relrewrite", O),
            ("relfrozenxid", O),
            ("relminmxid", O),
            ("relacl", T),
            ("reloptions", T),
            ("relpartbound", T),
        ],
    ),
    (
        "pg_attribute",
        &[
            ("attrelid", O),
            ("attname", T),
            ("atttypid", O),
            ("attlen", I2),
            ("attnum", I2),
            ("attcacheoff", I4),
            ("atttypmod", I4),
            ("attndims", I2),
            ("attbyval", B),
            ("attalign", T),
            ("attstorage", T),
            ("attcompression", T),
            ("attnotnull", B),
            ("atthasdef", B),
            ("atthasmissing", B),
            ("attidentity", T),
            ("attgenerated", T),
            ("attisdropped", B),
            ("attislocal", B),
            ("attinhcount", I2),
            ("attstattarget", I2),
            ("attcollation", O),
            ("attacl", T),
            ("attoptions", T),
            ("attfdwoptions", T),
            ("attmissingval", T),
        ],
    ),
    (
        "pg_type",
        &[
            ("oid", O),
            ("typname", T),
            ("typnamespace", O),
            ("typowner", O),
            ("typlen", I2),
            ("typbyval", B),
            ("typtype", T),
            ("typcategory", T),
            ("typispreferred", B),
            ("typisdefined", B),
            ("typdelim", T),
            ("typrelid", O),
            ("typsubscript", T),
            ("typelem", O),
            ("typarray", O),
            // regproc in PostgreSQL: OIDs of pg_proc rows.
            ("typinput", O),
            ("typoutput", O),
            ("typreceive", O),
            ("typsend", O),
            ("typmodin", T),
            ("typmodout", T),
            ("typanalyze", T),
            ("typalign", T),
            ("typstorage", T),
            ("typnotnull", B),
            ("typbasetype", O),
            ("typtypmod", I4),
            ("typndims", I4),
            ("typcollation", O),
            ("typdefaultbin", T),
            ("typdefault", T),
            ("typacl", T),
        ],
    ),
    (
        "pg_database",
        &[
            ("oid", O),
            ("datname", T),
            ("datdba", O),
            ("encoding", I4),
            ("datlocprovider", T),
            ("datistemplate", B),
            ("datallowconn", B),
            ("datconnlimit", I4),
            ("datfrozenxid", O),
            ("datminmxid", O),
            ("dattablespace", O),
            ("datcollate", T),
            ("datctype", T),
            ("daticulocale", T),
            ("daticurules", T),
            ("datcollversion", T),
            ("datacl", T),
        ],
    ),
    (
        "pg_am",
        &[("oid", O), ("amname", T), ("amhandler", T), ("amtype", T)],
    ),
    (
        "pg_roles",
        &[
            ("rolname", T),
            ("rolsuper", B),
            ("rolinherit", B),
            ("rolcreaterole", B),
            ("rolcreatedb", B),
            ("rolcanlogin", B),
            ("rolreplication", B),
            ("rolconnlimit", I4),
            ("rolpassword", T),
            ("rolvaliduntil", T),
            ("rolbypassrls", B),
            ("rolconfig", T),
            ("oid", O),
        ],
    ),
    (
        "pg_tables",
        &[
            ("schemaname", T),
            ("tablename", T),
            ("tableowner", T),
            ("tablespace", T),
            ("hasindexes", B),
            ("hasrules", B),
            ("hastriggers", B),
            ("rowsecurity", B),
        ],
    ),
    (
        "pg_views",
        &[
            ("schemaname", T),
            ("viewname", T),
            ("viewowner", T),
            ("definition", T),
        ],
    ),
    (
        "pg_matviews",
        &[
            ("schemaname", T),
            ("matviewname", T),
            ("matviewowner", T),
            ("tablespace", T),
            ("hasindexes", B),
            ("ispopulated", B),
            ("definition", T),
        ],
    ),
    (
        "pg_description",
        &[
            ("objoid", O),
            ("classoid", O),
            ("objsubid", I4),
            ("description", T),
        ],
    ),
    (
        "pg_attrdef",
        &[("oid", O), ("adrelid", O), ("adnum", I2), ("adbin", T)],
    ),
    (
        "pg_collation",
        &[
            ("oid", O),
            ("collname", T),
            ("collnamespace", O),
            ("collowner", O),
            ("collprovider", T),
        ],
    ),
    (
        "pg_index",
        &[
            ("indexrelid", O),
            ("indrelid", O),
            ("indnatts", I2),
            ("indnkeyatts", I2),
            ("indisunique", B),
            ("indisprimary", B),
            ("indisexclusion", B),
            ("indimmediate", B),
            ("indisclustered", B),
            ("indisvalid", B),
            ("indcheckxmin", B),
            ("indisready", B),
            ("indislive", B),
            ("indisreplident", B),
            ("indkey", T),
            ("indcollation", T),
            ("indclass", T),
            ("indoption", T),
            ("indexprs", T),
            ("indpred", T),
            ("indnullsnotdistinct", B),
        ],
    ),
    (
        "pg_inherits",
        &[
            ("inhrelid", O),
            ("inhparent", O),
            ("inhseqno", I4),
            ("inhdetachpending", B),
        ],
    ),
    (
        "pg_constraint",
        &[
            ("oid", O),
            ("conname", T),
            ("connamespace", O),
            ("contype", T),
            ("condeferrable", B),
            ("condeferred", B),
            ("convalidated", B),
            ("conrelid", O),
            ("contypid", O),
            ("conindid", O),
            ("conparentid", O),
            ("confrelid", O),
            ("confupdtype", T),
            ("confdeltype", T),
            ("confmatchtype", T),
            ("conislocal", B),
            ("coninhcount", I2),
            ("connoinherit", B),
            ("conkey", T),
            ("confkey", T),
            ("conbin", T),
        ],
    ),
    (
        "pg_policy",
        &[
            ("oid", O),
            ("polname", T),
            ("polrelid", O),
            ("polcmd", T),
            ("polpermissive", B),
            ("polroles", T),
            ("polqual", T),
            ("polwithcheck", T),
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            ("oid", O),
            ("stxrelid", O),
            ("stxname", T),
            ("stxnamespace", O),
            ("stxowner", O),
            ("stxstattarget", I4),
            ("stxkeys", T),
            ("stxkind", T),
            ("stxexprs", T),
        ],
    ),
    (
        "pg_trigger",
        &[
            ("oid", O),
            ("tgrelid", O),
            ("tgparentid", O),
            ("tgname", T),
            ("tgfoid", O),
            ("tgtype", I2),
            ("tgenabled", T),
            ("tgisinternal", B),
            ("tgconstrrelid", O),
            ("tgconstrindid", O),
            ("tgconstraint", O),
            ("tgdeferrable", B),
            ("tginitdeferred", B),
            ("tgnargs", I2),
        ],
    ),
    (
        "pg_publication",
        &[
            ("oid", O),
            ("pubname", T),
            ("pubowner", O),
            ("puballtables", B),
            ("pubinsert", B),
            ("pubupdate", B),
            ("pubdelete", B),
            ("pubtruncate", B),
            ("pubviaroot", B),
        ],
    ),
    (
        "pg_publication_rel",
        &[
            ("oid", O),
            ("prpubid", O),
            ("prrelid", O),
            ("prqual", T),
            ("prattrs", T),
        ],
    ),
    (
        "pg_publication_namespace",
        &[("oid", O), ("pnpubid", O), ("pnnspid", O)],
    ),
    (
        "pg_rewrite",
        &[
            ("oid", O),
            ("rulename", T),
            ("ev_class", O),
            ("ev_type", T),
            ("ev_enabled", T),
            ("is_instead", B),
        ],
    ),
    (
        "pg_proc",
        &[
            ("oid", O),
            ("proname", T),
            ("pronamespace", O),
            ("proowner", O),
            ("prolang", O),
            ("procost", F4),
            ("prorows", F4),
            ("provariadic", O),
            ("prokind", T),
            ("prosecdef", B),
            ("proleakproof", B),
            ("proisstrict", B),
            ("proretset", B),
            ("provolatile", T),
            ("proparallel", T),
            ("pronargs", I2),
            ("pronargdefaults", I2),
            ("prorettype", O),
            ("proargtypes", T),
            ("prosrc", T),
            ("probin", T),
            ("proconfig", T),
            ("proacl", T),
        ],
    ),
    (
        "pg_depend",
        &[
            ("classid", O),
            ("objid", O),
            ("objsubid", I4),
            ("refclassid", O),
            ("refobjid", O),
            ("refobjsubid", I4),
            ("deptype", T),
        ],
    ),
    (
        "pg_extension",
        &[
            ("oid", O),
            ("extname", T),
            ("extowner", O),
            ("extnamespace", O),
            ("extrelocatable", B),
            ("extversion", T),
        ],
    ),
    (
        "pg_partitioned_table",
        &[
            ("partrelid", O),
            ("partstrat", T),
            ("partnatts", I2),
            ("partdefid", O),
        ],
    ),
    (
        "pg_foreign_table",
        &[("ftrelid", O), ("ftserver", O), ("ftoptions", T)],
    ),
    (
        "pg_tablespace",
        &[
            ("oid", O),
            ("spcname", T),
            ("spcowner", O),
            ("spcacl", T),
            ("spcoptions", T),
        ],
    ),
    (
        "pg_range",
        &[
            ("rngtypid", O),
            ("rngsubtype", O),
            ("rngmultitypid", O),
            ("rngcollation", O),
        ],
    ),
    // No sequences, and no collations but the default (OID 0 in
    // pg_attribute): SQLAlchemy's column reflection reads both.
    (
        "pg_sequence",
        &[
            ("seqrelid", O),
            ("seqtypid", O),
            ("seqstart", I8),
            ("seqincrement", I8),
            ("seqmax", I8),
            ("seqmin", I8),
            ("seqcache", I8),
            ("seqcycle", B),
        ],
    ),
    (
        "pg_collation",
        &[
            ("oid", O),
            ("collname", T),
            ("collnamespace", O),
            ("collowner", O),
            ("collprovider", T),
            ("collisdeterministic", B),
            ("collencoding", I4),
            ("collcollate", T),
            ("collctype", T),
        ],
    ),
    (
        "pg_stat_user_tables",
        &[
            ("relid", O),
            ("schemaname", T),
            ("relname", T),
            ("seq_scan", I8),
            ("seq_tup_read", I8),
            ("idx_scan", I8),
            ("idx_tup_fetch", I8),
            ("n_tup_ins", I8),
            ("n_tup_upd", I8),
            ("n_tup_del", I8),
            ("n_tup_hot_upd", I8),
            ("n_live_tup", I8),
            ("n_dead_tup", I8),
        ],
    ),
    (
        "pg_stat_activity",
        &[
            ("datid", O),
            ("datname", T),
            ("pid", I4),
            ("leader_pid", I4),
            ("usesysid", O),
            ("usename", T),
            ("application_name", T),
            ("client_addr", T),
            ("client_hostname", T),
            ("client_port", I4),
            ("backend_start", TS),
            ("xact_start", TS),
            ("query_start", TS),
            ("state_change", TS),
            ("wait_event_type", T),
            ("wait_event", T),
            ("state", T),
            ("backend_xid", T),
            ("backend_xmin", T),
            ("query_id", I8),
            ("query", T),
            ("backend_type", T),
        ],
    ),
    (
        "pg_language",
        &[
            ("oid", O),
            ("lanname", T),
            ("lanowner", O),
            ("lanispl", B),
            ("lanpltrusted", B),
            ("lanplcallfoid", O),
            ("laninline", O),
            ("lanvalidator", O),
            ("lanacl", T),
        ],
    ),
    (
        "pg_opclass",
        &[
            ("oid", O),
            ("opcmethod", O),
            ("opcname", T),
            ("opcnamespace", O),
            ("opcowner", O),
            ("opcfamily", O),
            ("opcintype", O),
            ("opcdefault", B),
            ("opckeytype", O),
        ],
    ),
    (
        "pg_enum",
        &[
            ("oid", O),
            ("enumtypid", O),
            ("enumsortorder", F4),
            ("enumlabel", T),
        ],
    ),
    (
        "pg_settings",
        &[
            ("name", T),
            ("setting", T),
            ("unit", T),
            ("category", T),
            ("short_desc", T),
            ("context", T),
            ("vartype", T),
            ("source", T),
        ],
    ),
];

/// The descriptions PostgreSQL gives its own schemas (2615 is
/// pg_namespace's OID, the `classoid` of a schema's description).
pub const SCHEMA_DESCRIPTIONS: &[(&str, &str)] = &[
    ("pg_catalog", "system catalog schema"),
    ("public", "standard public schema"),
];

/// Tables that always have rows; every other table of [`TABLES`] is empty.
const POPULATED: &[&str] = &[
    "pg_proc",
    "pg_stat_user_tables",
    "pg_stat_activity",
    "pg_language",
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_am",
    "pg_roles",
    "pg_tables",
    "pg_views",
    "pg_description",
    "pg_tablespace",
];

/// True for the tables of `pg_catalog`.
pub fn is_catalog_table(table: &str) -> bool {
    TABLES.iter().any(|(n, _)| *n == table)
}

/// True for pg_catalog tables that never have rows here (indexes, triggers,
/// policies, defaults, …): queries over them can be answered without
/// planning them (see `engine::pg_dialect`).
pub fn always_empty(table: &str) -> bool {
    TABLES.iter().any(|(n, _)| *n == table) && !POPULATED.contains(&table)
}

#[derive(Debug)]
pub struct PgCatalogSchema {
    catalog: Arc<Catalog>,
}

impl PgCatalogSchema {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    fn build(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((_, columns)) = TABLES.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        let columns: Vec<(&str, DataType)> = columns
            .iter()
            .map(|(n, t)| (*n, column_type(n, t)))
            .collect();
        memory_table(&columns, self.rows(name)).map(Some)
    }

    fn rows(&self, name: &str) -> Vec<Vec<ScalarValue>> {
        let snap = self.catalog.snapshot();
        let mut schemas: Vec<&str> = snap.schemas.keys().map(String::as_str).collect();
        schemas.extend(SYSTEM_SCHEMAS);
        match name {
            "pg_namespace" => schemas
                .iter()
                .map(|s| vec![o(oid::namespace_oid(s)), t(s), o(OWNER_OID), null()])
                .collect(),
            "pg_class" => snap
                .relations()
                .map(|r| {
                    let kind = if r.kind == RelationKind::View {
                        "v"
                    } else {
                        "r"
                    };
                    let rows = r.pointer.as_ref().map_or(-1.0, |p| p.rows as f32);
                    vec![
                        o(oid::relation_oid(&r.schema, &r.name)),
                        t(&r.name),
                        o(oid::namespace_oid(&r.schema)),
                        o(oid::relation_type_oid(&r.schema, &r.name)),
                        o(0),
                        o(OWNER_OID),
                        o(if kind == "r" { 2 } else { 0 }),
                        o(0),
                        o(0),
                        i4(0),
                        f4(rows),
                        i4(0),
                        o(0),
                        b(false),
                        b(false),
                        // [t]emporary or [p]ermanent
                        t(if r.schema.starts_with(super::TEMP_SCHEMA_PREFIX) {
                            "t"
                        } else {
                            "p"
                        }),
                        t(kind),
                        i2(r.arrow_schema.fields().len() as i16),
                        i2(0),
                        b(kind == "v"),
                        b(false),
                        b(false),
                        b(false),
                        b(false),
                        b(true),
                        t("d"),
                        b(false),
                        o(0),
                        o(0),
                        o(0),
                        null(),
                        null(),
                        null(),
                    ]
                })
                .collect(),
            "pg_attribute" => snap
                .relations()
                .flat_map(|r| {
                    let rel = oid::relation_oid(&r.schema, &r.name);
                    r.arrow_schema
                        .fields()
                        .iter()
                        .enumerate()
                        .map(move |(i, f)| {
                            let (type_oid, _, _) = describe(f.data_type());
                            let len = pg_types::pg_type_of(f.data_type()).len;
                            vec![
                                o(rel),
                                t(f.name()),
                                o(type_oid),
                                i2(len),
                                i2(i as i16 + 1),
                                i4(-1),
                                i4(-1),
                                i2(0),
                                b(len > 0),
                                t("i"),
                                t("x"),
                                t(""),
                                b(!f.is_nullable()),
                                b(false),
                                b(false),
                                t(""),
                                t(""),
                                b(false),
                                b(true),
                                i2(0),
                                i2(-1),
                                o(0),
                                null(),
                                null(),
                                null(),
                                null(),
                            ]
                        })
                })
                .collect(),
            "pg_type" => pg_types::ALL
                .iter()
                .flat_map(|p| {
                    let base = vec![
                        o(p.oid),
                        t(p.name),
                        o(oid::PG_CATALOG_NAMESPACE),
                        o(OWNER_OID),
                        i2(p.len),
                        b(p.len > 0 && p.len <= 8),
                        t("b"),
                        t(p.category),
                        b(false),
                        b(true),
                        t(","),
                        o(0),
                        null(),
                        o(0),
                        o(p.array_oid),
                        o(oid::function_oid(&format!("{}in", p.name))),
                        o(oid::function_oid(&format!("{}out", p.name))),
                        o(oid::function_oid(&format!("{}recv", p.name))),
                        o(oid::function_oid(&format!("{}send", p.name))),
                        null(),
                        null(),
                        null(),
                        t("i"),
                        t("p"),
                        b(false),
                        o(0),
                        i4(-1),
                        i4(0),
                        o(0),
                        null(),
                        null(),
                        null(),
                    ];
                    let array = vec![
                        o(p.array_oid),
                        t(&format!("_{}", p.name)),
                        o(oid::PG_CATALOG_NAMESPACE),
                        o(OWNER_OID),
                        i2(-1),
                        b(false),
                        t("b"),
                        t("A"),
                        b(false),
                        b(true),
                        t(","),
                        o(0),
                        t("array_subscript_handler"),
                        o(p.oid),
                        o(0),
                        o(oid::function_oid("array_in")),
                        o(oid::function_oid("array_out")),
                        o(oid::function_oid("array_recv")),
                        o(oid::function_oid("array_send")),
                        null(),
                        null(),
                        null(),
                        t("i"),
                        t("x"),
                        b(false),
                        o(0),
                        i4(-1),
                        i4(0),
                        o(0),
                        null(),
                        null(),
                        null(),
                    ];
                    [base, array]
                })
                .collect(),
            // Materialised tables, with their live rows (Metabase shows
            // them as the estimated row count) and the point lookups
            // answered from their key index; sequential scans are not
            // counted.
            "pg_stat_user_tables" => snap
                .relations()
                .filter_map(|r| {
                    let rows = r.pointer.as_ref()?.rows as i64;
                    let live = ScalarValue::Int64(Some(rows));
                    let zero = || ScalarValue::Int64(Some(0));
                    let index = self.catalog.stats().get(&r.schema, &r.name);
                    Some(vec![
                        o(oid::relation_oid(&r.schema, &r.name)),
                        t(&r.schema),
                        t(&r.name),
                        zero(),
                        zero(),
                        ScalarValue::Int64(Some(index.idx_scan)),
                        ScalarValue::Int64(Some(index.idx_tup_fetch)),
                        live.clone(),
                        zero(),
                        ScalarValue::Int64(Some(r.pointer.as_ref()?.deleted_rows() as i64)),
                        zero(),
                        live,
                        zero(),
                    ])
                })
                .collect(),
            // The server's connections; a CLI process has none.
            "pg_stat_activity" => self
                .catalog
                .backends()
                .list()
                .iter()
                .map(|b| {
                    let a = b.activity();
                    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        ScalarValue::TimestampMicrosecond(
                            t.map(|t| t.timestamp_micros()),
                            Some("UTC".into()),
                        )
                    };
                    vec![
                        o(DATABASE_OID),
                        t(DATABASE),
                        i4(b.pid),
                        null(),
                        if b.user == OWNER {
                            o(OWNER_OID)
                        } else {
                            null()
                        },
                        t(&b.user),
                        t(&a.application_name),
                        b.client_addr.map_or_else(null, |c| t(&c.ip().to_string())),
                        null(),
                        b.client_addr.map_or_else(null, |c| i4(i32::from(c.port()))),
                        ts(Some(b.backend_start)),
                        ts(a.xact_start),
                        ts(a.query_start),
                        ts(Some(a.state_change)),
                        if a.state == State::Active {
                            null()
                        } else {
                            t("Client")
                        },
                        if a.state == State::Active {
                            null()
                        } else {
                            t("ClientRead")
                        },
                        t(a.state.as_str()),
                        null(),
                        null(),
                        null(),
                        t(&a.query),
                        t("client backend"),
                    ]
                })
                .collect(),
            // The I/O functions pg_type names (Npgsql tells arrays by
            // their receive function, array_recv).
            "pg_proc" => {
                let mut names: Vec<String> = pg_types::ALL
                    .iter()
                    .flat_map(|p| ["in", "out", "recv", "send"].map(|f| format!("{}{f}", p.name)))
                    .collect();
                names.extend(
                    ["array_in", "array_out", "array_recv", "array_send"].map(str::to_owned),
                );
                names
                    .iter()
                    .map(|n| {
                        // Built in (language 12, internal), strict,
                        // immutable and parallel safe, as PostgreSQL's.
                        vec![
                            o(oid::function_oid(n)),
                            t(n),
                            o(oid::PG_CATALOG_NAMESPACE),
                            o(OWNER_OID),
                            o(12),
                            f4(1.0),
                            f4(0.0),
                            o(0),
                            t("f"),
                            b(false),
                            b(false),
                            b(true),
                            b(false),
                            t("i"),
                            t("s"),
                            i2(1),
                            i2(0),
                            o(0),
                            t(""),
                            t(n),
                            null(),
                            null(),
                            null(),
                        ]
                    })
                    .collect()
            }
            "pg_database" => vec![vec![
                o(DATABASE_OID),
                t(DATABASE),
                o(OWNER_OID),
                i4(6),
                t("c"),
                b(false),
                b(true),
                i4(-1),
                o(0),
                o(0),
                o(1663),
                t("C.UTF-8"),
                t("C.UTF-8"),
                null(),
                null(),
                null(),
                null(),
            ]],
            "pg_am" => vec![vec![o(2), t("heap"), t("heap_tableam_handler"), t("t")]],
            "pg_roles" => vec![vec![
                t(OWNER),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(false),
                i4(-1),
                t("********"),
                null(),
                b(true),
                null(),
                o(OWNER_OID),
            ]],
            "pg_tables" => snap
                .relations()
                .filter(|r| r.kind != RelationKind::View)
                .map(|r| {
                    vec![
                        t(&r.schema),
                        t(&r.name),
                        t(OWNER),
                        null(),
                        b(false),
                        b(false),
                        b(false),
                        b(false),
                    ]
                })
                .collect(),
            "pg_views" => snap
                .relations()
                .filter_map(|r| {
                    r.view
                        .as_ref()
                        .map(|v| vec![t(&r.schema), t(&r.name), t(OWNER), t(&v.sql)])
                })
                .collect(),
            // objsubid 0 is the relation, n its n-th column; 1259 is
            // pg_class's own OID.
            "pg_description" => SCHEMA_DESCRIPTIONS
                .iter()
                .map(|(schema, text)| vec![o(oid::namespace_oid(schema)), o(2615), i4(0), t(text)])
                .chain(snap.relations().flat_map(|r| {
                    let rel = oid::relation_oid(&r.schema, &r.name);
                    let Some(comments) = r.comments() else {
                        return Vec::new();
                    };
                    let on_relation = comments.relation.iter().map(|c| (0, c));
                    let on_columns =
                        r.arrow_schema
                            .fields()
                            .iter()
                            .enumerate()
                            .filter_map(|(i, f)| {
                                comments.columns.get(f.name()).map(|c| (i as i32 + 1, c))
                            });
                    on_relation
                        .chain(on_columns)
                        .map(|(sub, c)| vec![o(rel), o(1259), i4(sub), t(c)])
                        .collect::<Vec<_>>()
                }))
                .collect(),
            // PostgreSQL's built-in languages, with their validators.
            "pg_language" => [
                (12, "internal", false, 2246),
                (13, "c", false, 2247),
                (14, "sql", true, 2248),
            ]
            .into_iter()
            .map(|(id, name, trusted, validator)| {
                vec![
                    o(id),
                    t(name),
                    o(OWNER_OID),
                    b(false),
                    b(trusted),
                    o(0),
                    o(0),
                    o(validator),
                    null(),
                ]
            })
            .collect(),
            "pg_tablespace" => vec![vec![o(1663), t("pg_default"), o(OWNER_OID), null(), null()]],
            _ => Vec::new(),
        }
    }
}

/// A table of `rows` (NULLs typed by their column), all columns nullable.
pub(super) fn memory_table(
    columns: &[(&str, DataType)],
    rows: Vec<Vec<ScalarValue>>,
) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            if rows.is_empty() {
                return Ok(new_empty_array(t));
            }
            let values: Vec<ScalarValue> = rows
                .iter()
                .map(|r| r.get(i).cloned().unwrap_or(ScalarValue::Null))
                .map(|v| {
                    if v.is_null() {
                        ScalarValue::try_from(t).unwrap_or(v)
                    } else {
                        v
                    }
                })
                .collect();
            ScalarValue::iter_to_array(values)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// The tables of pg_catalog with their columns (for information_schema).
pub(super) fn tables() -> impl Iterator<Item = (&'static str, Vec<(&'static str, DataType)>)> {
    TABLES.iter().map(|(name, columns)| {
        (
            *name,
            columns
                .iter()
                .map(|(n, t)| (*n, column_type(n, t)))
                .collect(),
        )
    })
}

/// ACL and option columns are text arrays in PostgreSQL (clients call
/// `array_to_string` on them); always NULL here. Timestamps carry a time
/// zone (a `const` cannot).
fn column_type(name: &str, declared: &DataType) -> DataType {
    if *declared == TS {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    } else if name.ends_with("acl")
        || name.ends_with("options")
        || name == "rolconfig"
        || name == "proconfig"
    {
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
    } else {
        declared.clone()
    }
}

fn o(v: u32) -> ScalarValue {
    ScalarValue::UInt32(Some(v))
}
pub(super) fn t(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_owned()))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}
fn i2(v: i16) -> ScalarValue {
    ScalarValue::Int16(Some(v))
}
pub(super) fn i4(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}
fn f4(v: f32) -> ScalarValue {
    ScalarValue::Float32(Some(v))
}
pub(super) fn null() -> ScalarValue {
    ScalarValue::Null
}

#[async_trait::async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|(n, _)| (*n).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.build(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.iter().any(|(n, _)| *n == name)
    }
}
