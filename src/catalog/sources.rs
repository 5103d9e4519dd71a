//! Raw sources: each folder `raw/<source>/` of the landing zone is a table
//! named `<source>`. `events`, `crm_contacts` and `orders` have declared
//! schemas (PRODUCT.md); any other folder's schema is read from its files.
//!
//! Files may differ: the table schema is the declared columns (with their
//! declared types) followed by every extra column found in any file; a file
//! missing a column reads it as NULL, and string / timestamp encodings are
//! cast (Utf8View, LargeUtf8, other timestamp units). Hive partition folders
//! (`dt=2026-01-31/`) become Utf8 columns; every file of a source must sit
//! at the same partition depth, otherwise the source is refused with the
//! file named, because DataFusion would silently skip the odd ones out.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;

use crate::error::{Error, Result};
use crate::storage::{Storage, layout};

/// A source and what was learnt from its files.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub name: String,
    pub schema: SchemaRef,
    pub files: usize,
    /// Its Parquet files: `(path relative to the storage root, size)`.
    pub file_list: Vec<(String, u64)>,
    pub provider: Arc<dyn TableProvider>,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The declared schema of a well-known source, if it is one.
pub fn declared_schema(source: &str) -> Option<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let fields = match source {
        "events" => vec![
            s("message_id"),
            s("type"),
            s("event"),
            Field::new("timestamp", ts(), true),
            Field::new("received_at", ts(), true),
            s("anonymous_id"),
            s("user_id"),
            s("previous_id"),
            s("group_id"),
            s("context"),
            s("traits"),
            s("properties"),
        ],
        "crm_contacts" => vec![
            s("contact_id"),
            s("email"),
            s("phone"),
            s("first_name"),
            s("last_name"),
            Field::new("birthday", DataType::Date32, true),
            s("city"),
            s("country"),
            Field::new("consent_email", DataType::Boolean, true),
            Field::new("updated_at", ts(), true),
        ],
        "orders" => vec![
            s("order_id"),
            s("email"),
            Field::new("amount", DataType::Float64, true),
            s("currency"),
            Field::new("ordered_at", ts(), true),
        ],
        _ => return None,
    };
    Some(Schema::new(fields))
}

/// Every source: the declared ones (even with no files yet) and each folder
/// under `raw/`. A source whose files cannot be read is still listed, as a
/// table whose every query fails with the reason (naming the file), so one
/// bad upload neither hides the source nor takes the others down.
pub async fn load_sources(storage: &Storage) -> Result<Vec<SourceTable>> {
    let mut names: Vec<String> = vec!["events".into(), "crm_contacts".into(), "orders".into()];
    for dir in storage.list_dirs(layout::RAW).await? {
        if !names.contains(&dir) && !dir.starts_with(['_', '.']) {
            names.push(dir);
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match load_source(storage, &name).await {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "source cannot be read");
                let schema = Arc::new(declared_schema(&name).unwrap_or_else(Schema::empty));
                out.push(SourceTable {
                    name: name.clone(),
                    schema: Arc::clone(&schema),
                    files: 0,
                    file_list: Vec::new(),
                    provider: Arc::new(BrokenSource {
                        schema,
                        message: e.to_string(),
                    }),
                });
            }
        }
    }
    Ok(out)
}

/// A source that could not be loaded: every scan fails with why.
#[derive(Debug)]
struct BrokenSource {
    schema: SchemaRef,
    message: String,
}

#[async_trait::async_trait]
impl TableProvider for BrokenSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::Plan(
            self.message.clone(),
        ))
    }
}

async fn load_source(storage: &Storage, name: &str) -> Result<Option<SourceTable>> {
    let dir = layout::raw_dir(name);
    let files: Vec<(String, u64)> = storage
        .list(&dir)
        .await?
        .into_iter()
        .filter(|(p, _)| p.ends_with(".parquet") && !is_hidden(&p[dir.len()..]))
        .collect();
    let declared = declared_schema(name);
    if files.is_empty() && declared.is_none() {
        return Ok(None);
    }
    let source_err = |message: String| Error::Source {
        source_name: name.to_owned(),
        message,
    };

    // Hive partition keys: the same `k=v` folder sequence for every file.
    let mut partition_keys: Option<(Vec<String>, &str)> = None;
    for (path, _) in &files {
        let rel = &path[dir.len()..];
        let keys: Vec<String> = rel
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|seg| {
                seg.split_once('=')
                    .map(|(k, _)| k.to_owned())
                    .unwrap_or_default()
            })
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err(source_err(format!(
                "file {path} is in a folder that is not a hive partition (key=value); \
                 put files directly in {dir} or in key=value folders"
            )));
        }
        match &partition_keys {
            None => partition_keys = Some((keys, path)),
            Some((first, first_path)) if *first != keys => {
                return Err(source_err(format!(
                    "files use different partition folders: {first_path} has {first:?}, {path} has {keys:?}"
                )));
            }
            Some(_) => {}
        }
    }
    let partition_keys = partition_keys.map(|(k, _)| k).unwrap_or_default();

    // Merge file schemas onto the declared one.
    let mut fields: Vec<Field> = declared
        .as_ref()
        .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
        .unwrap_or_default();
    let mut seen: BTreeMap<String, DataType> = fields
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    for (path, size) in &files {
        let file_schema = read_file_schema(storage, path, *size)
            .await
            .map_err(|e| source_err(format!("reading {path}: {e}")))?;
        for f in file_schema.fields() {
            if partition_keys.contains(f.name()) {
                continue;
            }
            let file_type = normalise_type(f.data_type());
            match seen.get(f.name()) {
                None => {
                    seen.insert(f.name().clone(), file_type.clone());
                    fields.push(Field::new(f.name(), file_type, true));
                }
                Some(t)
                    if declared
                        .as_ref()
                        .is_some_and(|d| d.field_with_name(f.name()).is_ok()) =>
                {
                    if !datafusion::arrow::compute::can_cast_types(f.data_type(), t) {
                        return Err(source_err(format!(
                            "file {path}: column {} has type {} which cannot be read as {t}",
                            f.name(),
                            f.data_type()
                        )));
                    }
                }
                Some(t)
                    if *t != file_type
                        && !datafusion::arrow::compute::can_cast_types(&file_type, t) =>
                {
                    return Err(source_err(format!(
                        "file {path}: column {} has type {file_type}, other files have {t}",
                        f.name()
                    )));
                }
                Some(_) => {}
            }
        }
    }
    let fields: Vec<Field> = fields.into_iter().map(|f| f.with_nullable(true)).collect();
    let schema = Arc::new(Schema::new(fields));

    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partition_keys
                .iter()
                .map(|k| (k.clone(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(storage.listing_url(&dir)?)
        .with_listing_options(options)
        .with_schema(Arc::clone(&schema));
    let provider = Arc::new(ListingTable::try_new(config)?);
    Ok(Some(SourceTable {
        name: name.to_owned(),
        schema: provider.schema(),
        files: files.len(),
        file_list: files,
        provider,
    }))
}

fn is_hidden(rel: &str) -> bool {
    rel.split('/').any(|seg| seg.starts_with(['_', '.']))
}

/// Types we present for string-like columns, whatever the file used.
fn normalise_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Dictionary(_, v) => normalise_type(v),
        other => other.clone(),
    }
}

/// Reads a Parquet file's schema from its footer (one or two range reads).
async fn read_file_schema(storage: &Storage, rel: &str, size: u64) -> Result<SchemaRef> {
    let bad = |message: &str| Error::Source {
        source_name: rel.to_owned(),
        message: message.to_owned(),
    };
    if size < 12 {
        return Err(bad("too small to be a Parquet file"));
    }
    let tail_len = size.min(64 * 1024);
    let tail = storage.get_range(rel, size - tail_len..size).await?;
    let n = tail.len();
    if &tail[n - 4..] != b"PAR1" {
        return Err(bad("not a Parquet file (no PAR1 footer)"));
    }
    let meta_len = u64::from(u32::from_le_bytes([
        tail[n - 8],
        tail[n - 7],
        tail[n - 6],
        tail[n - 5],
    ]));
    if meta_len + 8 > size {
        return Err(bad("corrupt Parquet footer"));
    }
    let meta_bytes = if meta_len + 8 <= tail_len {
        tail.slice(n - 8 - meta_len as usize..n - 8)
    } else {
        storage
            .get_range(rel, size - 8 - meta_len..size - 8)
            .await?
    };
    let meta = ParquetMetaDataReader::decode_metadata(&meta_bytes)?;
    let file = meta.file_metadata();
    Ok(Arc::new(parquet_to_arrow_schema(
        file.schema_descr(),
        file.key_value_metadata(),
    )?))
}
