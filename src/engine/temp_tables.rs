//! A session's temporary tables (`CREATE TEMPORARY TABLE`), as PostgreSQL
//! keeps them: in a schema of the session's own, `pg_temp_<backend pid>`,
//! searched before the search path for unqualified names and reachable as
//! `pg_temp.name`. They are stored like any table (Parquet, published
//! atomically) so they can hold more than memory, and are dropped when the
//! session ends; a server removes those a crash left behind when it starts.

use crate::catalog::{Snapshot, TEMP_SCHEMA_PREFIX};

/// The alias PostgreSQL gives the session's own temporary schema.
pub const TEMP_ALIAS: &str = "pg_temp";

#[derive(Debug, Clone)]
pub struct TempTables {
    schema: String,
}

impl TempTables {
    pub fn new(backend_pid: i32) -> Self {
        Self {
            schema: format!("{TEMP_SCHEMA_PREFIX}{}", backend_pid.unsigned_abs()),
        }
    }

    /// The session's temporary schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// True if the session has a temporary table `name`.
    pub fn has(&self, snap: &Snapshot, name: &str) -> bool {
        snap.relation(&self.schema, name).is_some()
    }

    /// True if the session has any temporary table.
    pub fn any(&self, snap: &Snapshot) -> bool {
        snap.schemas
            .get(&self.schema)
            .is_some_and(|s| !s.is_empty())
    }
}
