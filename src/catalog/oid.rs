//! Stable PostgreSQL object ids. Clients cache OIDs and join on them, so an
//! object's OID is derived from its kind and name alone: the same across
//! restarts, connections and machines.

/// OIDs of PostgreSQL's own namespaces.
pub const PG_CATALOG_NAMESPACE: u32 = 11;
pub const PUBLIC_NAMESPACE: u32 = 2200;
pub const INFORMATION_SCHEMA_NAMESPACE: u32 = 13_000;
/// The one database, and the role that owns everything.
pub const DATABASE_OID: u32 = 16_384;
pub const OWNER_OID: u32 = 10;

/// First OID PostgreSQL gives to user objects.
const FIRST_USER_OID: u64 = 16_385;

pub fn namespace_oid(schema: &str) -> u32 {
    match schema {
        "pg_catalog" => PG_CATALOG_NAMESPACE,
        "public" => PUBLIC_NAMESPACE,
        "information_schema" => INFORMATION_SCHEMA_NAMESPACE,
        other => stable_oid("namespace", other),
    }
}

pub fn relation_oid(schema: &str, name: &str) -> u32 {
    if schema == "pg_catalog"
        && let Some((_, oid)) = CATALOG_TABLE_OIDS.iter().find(|(n, _)| *n == name)
    {
        return *oid;
    }
    stable_oid("relation", &format!("{schema}.{name}"))
}

/// PostgreSQL's own OIDs of the catalog tables clients name with
/// `'pg_catalog.pg_x'::regclass` (as `pg_description.classoid`).
const CATALOG_TABLE_OIDS: &[(&str, u32)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_inherits", 2611),
    ("pg_index", 2610),
    ("pg_description", 2609),
    ("pg_namespace", 2615),
    ("pg_rewrite", 2618),
    ("pg_trigger", 2620),
    ("pg_depend", 2608),
    ("pg_database", 1262),
    ("pg_authid", 1260),
];

/// A function of pg_proc (the type I/O functions); PostgreSQL's own OIDs
/// for the array functions.
pub fn function_oid(name: &str) -> u32 {
    match name {
        "array_in" => 750,
        "array_out" => 751,
        "array_recv" => 2400,
        "array_send" => 2401,
        other => stable_oid("function", other),
    }
}

/// The row type of a relation.
pub fn relation_type_oid(schema: &str, name: &str) -> u32 {
    stable_oid("rowtype", &format!("{schema}.{name}"))
}

fn stable_oid(kind: &str, name: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (FIRST_USER_OID + h % (i32::MAX as u64 - FIRST_USER_OID)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_stable_and_in_the_user_range() {
        let a = relation_oid("public", "profiles");
        assert_eq!(a, relation_oid("public", "profiles"));
        assert_ne!(a, relation_oid("segments", "profiles"));
        assert!(u64::from(a) >= FIRST_USER_OID && a < i32::MAX as u32);
        assert_eq!(namespace_oid("public"), 2200);
    }
}
