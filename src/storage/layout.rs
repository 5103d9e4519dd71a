//! Where things live under the storage root. Every path profiledb reads or
//! writes is spelled here, so the layout can be read in one place:
//!
//! ```text
//! raw/<source>/**.parquet                    landing zone (upstream tools write it; COPY adds files)
//! catalog/schemas/<schema>.json              user-created schemas
//! catalog/views/<schema>/<name>.json         persisted views (SQL + columns)
//! catalog/tables/<schema>/<name>.json        table pointers: the current version
//! data/<schema>/<name>/<version>/part-*.parquet   table versions
//! state/occurrence_index/<table>/<file>.u64      derived per-file hashes
//!                                            (`resolve_identities`; rebuilt if missing)
//! state/graph_index/<table>/<file>.u64       per-file row keys of its output (same)
//! state/column_index/<table>/<columns>/<file>.u64  a model's declared indexes:
//!                                            per-file hashes of the columns' values
//! history/runs/<run id>.json                one file per run of models (`system.runs`)
//! history/activations/<name>.json           an activation's delivery cursor
//! truth/                                     generator ground truth (tests only)
//! ```

pub const RAW: &str = "raw";
pub const CATALOG_SCHEMAS: &str = "catalog/schemas";
pub const CATALOG_VIEWS: &str = "catalog/views";
pub const CATALOG_TABLES: &str = "catalog/tables";
pub const DATA: &str = "data";
pub const TRUTH: &str = "truth";
pub const STATE: &str = "state";
pub const HISTORY_RUNS: &str = "history/runs";

pub fn raw_dir(source: &str) -> String {
    format!("{RAW}/{source}/")
}

pub fn schema_file(schema: &str) -> String {
    format!("{CATALOG_SCHEMAS}/{schema}.json")
}

pub fn view_file(schema: &str, name: &str) -> String {
    format!("{CATALOG_VIEWS}/{schema}/{name}.json")
}

pub fn table_pointer(schema: &str, name: &str) -> String {
    format!("{CATALOG_TABLES}/{schema}/{name}.json")
}

pub fn table_dir(schema: &str, name: &str) -> String {
    format!("{DATA}/{schema}/{name}")
}

pub fn table_version_dir(schema: &str, name: &str, version: &str) -> String {
    format!("{DATA}/{schema}/{name}/{version}")
}

/// Where the occurrence indexes of every table live.
pub fn occurrence_index_root() -> String {
    format!("{STATE}/occurrence_index/")
}

pub fn occurrence_index_dir(table: &str) -> String {
    format!("{}{table}/", occurrence_index_root())
}

/// The index of an occurrence file, by a digest of the file's path and size.
pub fn occurrence_index_file(table: &str, digest: u64) -> String {
    format!("{}{digest:016x}.u64", occurrence_index_dir(table))
}

pub fn graph_index_dir(table: &str) -> String {
    format!("{STATE}/graph_index/{table}/")
}

/// The index of a data file of `resolve_identities`' output table, by a
/// digest of the file's path.
pub fn graph_index_file(table: &str, digest: u64) -> String {
    format!("{}{digest:016x}.u64", graph_index_dir(table))
}

/// The declared indexes of a table (see `models::column_index`).
pub fn column_index_dir(table: &str) -> String {
    format!("{STATE}/column_index/{table}/")
}

/// One index of a table, by a digest of its columns.
pub fn column_index_columns_dir(table: &str, columns_digest: u64) -> String {
    format!("{}{columns_digest:016x}/", column_index_dir(table))
}

/// The index of one data file, by a digest of the file's path.
pub fn column_index_file(table: &str, columns_digest: u64, file_digest: u64) -> String {
    format!(
        "{}{file_digest:016x}.u64",
        column_index_columns_dir(table, columns_digest)
    )
}

/// Splits `catalog/<kind>/<schema>/<name>.json` into `(schema, name)`.
pub fn parse_object_file(prefix: &str, rel: &str) -> Option<(String, String)> {
    let rest = rel.strip_prefix(prefix)?.strip_prefix('/')?;
    let (schema, file) = rest.split_once('/')?;
    let name = file.strip_suffix(".json")?;
    (!name.contains('/')).then(|| (schema.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_files_parse_back() {
        let rel = view_file("segments", "big_spenders");
        assert_eq!(
            parse_object_file(CATALOG_VIEWS, &rel),
            Some(("segments".into(), "big_spenders".into()))
        );
        assert_eq!(
            parse_object_file(CATALOG_VIEWS, "catalog/views/x.json"),
            None
        );
    }
}
