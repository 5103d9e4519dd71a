//! SQL model files: one `SELECT` per file, materialised as a table named
//! after the file. The build order is derived from the table references in
//! the SQL itself ([`dag`]); [`run`] builds models in that order and
//! publishes each atomically.
//!
//! The default models (`sql/` in the repository) are compiled into the
//! binary, so `profiledb run` works from any directory; `--models DIR`
//! replaces them with a user's own.

pub mod changed;
pub mod column_index;
pub mod dag;
pub mod data_tests;
pub mod index_join;
pub mod index_scan;
pub mod key_set;
pub mod merge;
pub mod occurrence_lookups;
pub mod picked_reads;
pub mod run;
pub mod schedule;
pub mod table_diff;
pub mod template;

use std::path::Path;

use crate::error::{Error, Result};

/// A model: a table name and the query that builds it, or a seed: a
/// CSV file loaded as a table (dbt's seeds).
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    /// Where it came from (a file path, or `builtin:sql/<name>.sql`).
    pub path: String,
    pub sql: String,
    /// For a seed, its CSV file (`sql` is then a placeholder).
    pub seed: Option<std::path::PathBuf>,
}

/// The shipped models.
const DEFAULT_MODELS: &[(&str, &str)] = &[
    ("identifiers", include_str!("../../sql/identifiers.sql")),
    (
        "identity_rules",
        include_str!("../../sql/identity_rules.sql"),
    ),
    (
        "identity_graph",
        include_str!("../../sql/identity_graph.sql"),
    ),
    ("identity_map", include_str!("../../sql/identity_map.sql")),
    (
        "identity_health",
        include_str!("../../sql/identity_health.sql"),
    ),
    (
        "identity_links",
        include_str!("../../sql/identity_links.sql"),
    ),
    (
        "profile_redirects",
        include_str!("../../sql/profile_redirects.sql"),
    ),
    (
        "identity_rejections",
        include_str!("../../sql/identity_rejections.sql"),
    ),
    ("order_rows", include_str!("../../sql/order_rows.sql")),
    (
        "orders_unified",
        include_str!("../../sql/orders_unified.sql"),
    ),
    (
        "profile_traits",
        include_str!("../../sql/profile_traits.sql"),
    ),
    (
        "profile_scores",
        include_str!("../../sql/profile_scores.sql"),
    ),
    ("profiles", include_str!("../../sql/profiles.sql")),
    (
        "profile_events",
        include_str!("../../sql/profile_events.sql"),
    ),
];

pub fn default_models() -> Vec<Model> {
    DEFAULT_MODELS
        .iter()
        .map(|(name, sql)| Model {
            name: (*name).to_owned(),
            path: format!("builtin:sql/{name}.sql"),
            sql: (*sql).to_owned(),
            seed: None,
        })
        .collect()
}

/// Loads every `*.sql` file of `dir` (not recursive) as a model, and every
/// `*.csv` file of `dir/seeds/` as a seed.
pub fn load_dir(dir: &Path) -> Result<Vec<Model>> {
    let mut models = Vec::new();
    for path in files_with_extension(dir, &["sql"])? {
        let name = model_name(&path)?;
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        models.push(Model {
            name,
            path: path.display().to_string(),
            sql,
            seed: None,
        });
    }
    let seeds = dir.join("seeds");
    if seeds.is_dir() {
        for path in files_with_extension(&seeds, &["csv"])? {
            models.push(Model {
                name: model_name(&path)?,
                path: path.display().to_string(),
                sql: "SELECT 1".into(),
                seed: Some(path),
            });
        }
    }
    if models.is_empty() {
        return Err(Error::Config(format!(
            "no .sql model files in {}",
            dir.display()
        )));
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}

/// The files of `dir` (not recursive) ending in one of `.extensions`, by
/// name.
pub(crate) fn files_with_extension(
    dir: &Path,
    extensions: &[&str],
) -> Result<Vec<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("reading models folder {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("reading models folder {}", dir.display()), e))?
            .path();
        if path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The table a model or seed file builds: its file name, which must be a
/// valid table name.
fn model_name(path: &Path) -> Result<String> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::Config(format!("model file name is not UTF-8: {}", path.display())))?
        .to_owned();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(Error::Model {
            model: name,
            path: path.display().to_string(),
            message: "a model's file name must be a valid table name (letters, digits, _)".into(),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_sql_is_shipped() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        files.sort();
        let mut shipped: Vec<String> = super::DEFAULT_MODELS
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        shipped.sort();
        assert_eq!(files, shipped);
    }
}
