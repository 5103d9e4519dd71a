//! Atomic publication of materialised tables.
//!
//! A table version is a folder of Parquet files written under a fresh name;
//! it becomes visible only when the table's small JSON pointer is replaced
//! (one atomic `put`). Readers resolve the pointer when they plan a query, so
//! they see the old version or the new one, never a partial one. A failing
//! writer never touches the pointer; its stray folder is removed at once, or
//! by the next successful publish, which keeps the current and the previous
//! version (for queries still reading it) and deletes the rest.
//!
//! A version may also build on the current one (`VersionMeta::append_to`):
//! it keeps its files and adds new ones (an incremental append), and may
//! drop rows of the kept files by writing delete files (a delta, see
//! [`super::deletes`]). Folders that hold files a kept version names are
//! kept by the pruning.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::buffered::BufWriter;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::comments::Comments;
use super::deletes::{DeleteFile, DeletedRows, NewDeletes, PendingDeletes};
use super::{Storage, layout};
use crate::error::{Error, Result};

/// Rows per Parquet file before a new file is started.
const ROWS_PER_FILE: usize = 2_000_000;

/// A column as persisted in catalog files: the Arrow type in its display form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

pub fn columns_of(schema: &Schema) -> Vec<ColumnDef> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnDef {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

pub fn schema_of(columns: &[ColumnDef], path: &str) -> Result<SchemaRef> {
    let fields = columns
        .iter()
        .map(|c| {
            let data_type = DataType::from_str(&c.data_type).map_err(|e| Error::Metadata {
                path: path.to_owned(),
                message: format!("column {}: type {:?}: {e}", c.name, c.data_type),
            })?;
            Ok(Field::new(&c.name, data_type, c.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The pointer file of a table: which version is current, and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TablePointer {
    pub schema: String,
    pub name: String,
    pub version: String,
    /// Data files, relative to the storage root.
    pub files: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub published_at: String,
    pub columns: Vec<ColumnDef>,
    /// The model or statement that produced this version.
    #[serde(default)]
    pub produced_by: Option<String>,
    /// What a model's version was built from: per input (a raw source or
    /// a table), its version and files. An incremental run reads it to find
    /// the files that arrived since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputFiles>,
    /// Digest of the model's SQL template: a changed model is rebuilt whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_hash: Option<String>,
    /// Digest of the rows of a small table (up to [`CONTENT_HASH_ROWS`]):
    /// a rebuild with equal content keeps the current version, so tables
    /// reading it (as `identity_graph` reads the rules) see no change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Rows of `files` that are deleted, by data file (see
    /// [`super::deletes`]); `rows` counts the others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deletes: BTreeMap<String, DeleteFile>,
    /// `COMMENT ON` text; new versions keep it (for the columns they keep).
    #[serde(default, skip_serializing_if = "Comments::is_empty")]
    pub comments: Comments,
}

/// A table's or source's files as some version saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFiles {
    /// The table's version (None for a raw source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `(path relative to the storage root, size in bytes)`; a table's
    /// files are recorded with size 0 (they never change once written).
    pub files: Vec<(String, u64)>,
    /// A table's files with deleted rows: how many.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deleted: BTreeMap<String, u64>,
    /// A table's files with deleted rows: the delete file naming them, so
    /// that the changes since can be told (see [`super::changes`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delete_files: BTreeMap<String, String>,
}

impl InputFiles {
    /// A table version's files, as a model that reads it records them.
    pub fn of_table(pointer: &TablePointer) -> Self {
        Self {
            version: Some(pointer.version.clone()),
            files: pointer.files.iter().map(|f| (f.clone(), 0)).collect(),
            deleted: pointer
                .deletes
                .iter()
                .map(|(f, d)| (f.clone(), d.deleted))
                .collect(),
            delete_files: pointer
                .deletes
                .iter()
                .map(|(f, d)| (f.clone(), d.path.clone()))
                .collect(),
        }
    }

    /// The files of `current` not in `self`, or None when one of `self`'s
    /// files is gone, changed size or lost rows (the input was rewritten,
    /// not appended to).
    pub fn appended(&self, current: &InputFiles) -> Option<Vec<(String, u64)>> {
        if self.deleted != current.deleted {
            return None;
        }
        let now: BTreeMap<&str, u64> = current
            .files
            .iter()
            .map(|(p, s)| (p.as_str(), *s))
            .collect();
        if self
            .files
            .iter()
            .any(|(p, s)| now.get(p.as_str()) != Some(s))
        {
            return None;
        }
        let seen: BTreeSet<&str> = self.files.iter().map(|(p, _)| p.as_str()).collect();
        Some(
            current
                .files
                .iter()
                .filter(|(p, _)| !seen.contains(p.as_str()))
                .cloned()
                .collect(),
        )
    }
}

/// Tables up to this many rows carry a [`TablePointer::content_hash`].
pub const CONTENT_HASH_ROWS: u64 = 1_000_000;

/// How a new version relates to the current one.
#[derive(Debug, Clone, Default)]
pub struct VersionMeta {
    pub produced_by: Option<String>,
    pub inputs: BTreeMap<String, InputFiles>,
    pub sql_hash: Option<String>,
    /// Keep these files of the current version and add the new rows to
    /// them (an incremental append), instead of replacing them.
    pub append_to: Option<TablePointer>,
    /// With `append_to`: rows of its files to delete, handed over when the
    /// stream ends (a delta: deleted rows plus new rows).
    pub deletes: Option<Arc<PendingDeletes>>,
}

/// The outcome of [`publish_version`].
#[derive(Debug, Clone)]
pub struct Published {
    pub pointer: TablePointer,
    /// Rows written by this publish (the appended part).
    pub new_rows: u64,
    /// Rows of the base version this publish deleted.
    pub deleted_rows: u64,
    /// The content equals the current version's, which was kept.
    pub unchanged: bool,
}

impl TablePointer {
    /// Rows of the data files that are deleted.
    pub fn deleted_rows(&self) -> u64 {
        self.deletes.values().map(|d| d.deleted).sum()
    }

    /// The version folders this version's files (data and deletes) are in.
    fn version_dirs(&self) -> BTreeSet<String> {
        let table_dir = format!("{}/", layout::table_dir(&self.schema, &self.name));
        let mut dirs = BTreeSet::from([self.version.clone()]);
        for f in self
            .files
            .iter()
            .chain(self.deletes.values().map(|d| &d.path))
        {
            if let Some(v) = f.strip_prefix(&table_dir).and_then(|r| r.split('/').next()) {
                dirs.insert(v.to_owned());
            }
        }
        dirs
    }

    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        schema_of(
            &self.columns,
            &layout::table_pointer(&self.schema, &self.name),
        )
    }
}

/// Writes `stream` as a new version of `schema.name` (or, with
/// `meta.append_to`, as that version's files plus the new ones) and
/// publishes it — unless its content equals the current version's, which
/// is then kept.
pub async fn publish_version(
    storage: &Storage,
    schema: &str,
    name: &str,
    stream: SendableRecordBatchStream,
    meta: VersionMeta,
) -> Result<Published> {
    let version = new_version_id();
    let dir = layout::table_version_dir(schema, name, &version);
    let result = write_version(storage, schema, name, &version, &dir, stream, meta).await;
    if result.as_ref().is_err()
        && let Err(cleanup) = storage.delete_prefix(&format!("{dir}/")).await
    {
        tracing::warn!(%dir, error = %cleanup, "could not remove an unpublished version");
    }
    result
}

async fn write_version(
    storage: &Storage,
    schema: &str,
    name: &str,
    version: &str,
    dir: &str,
    stream: SendableRecordBatchStream,
    meta: VersionMeta,
) -> Result<Published> {
    let written = write_files(storage, dir, stream, meta.append_to.is_some()).await?;
    let previous: Option<TablePointer> = storage
        .get_json(&layout::table_pointer(schema, name))
        .await
        .ok()
        .flatten();
    // An append keeps the table's columns as declared (its rows may come
    // from a query whose columns are narrower, e.g. NOT NULL literals).
    let columns = match &meta.append_to {
        Some(base) => base.columns.clone(),
        None => columns_of(&written.schema),
    };
    if let Some(p) = &previous
        && meta.append_to.is_none()
        && written.content_hash.is_some()
        && p.content_hash == written.content_hash
        && p.columns == columns
    {
        return keep_version(storage, dir, p, meta).await;
    }
    let (mut files, mut rows, mut bytes, mut deletes) = (Vec::new(), 0, 0, BTreeMap::new());
    let mut deleted_now = 0;
    if let Some(base) = &meta.append_to {
        files.extend(base.files.iter().cloned());
        rows += base.rows;
        bytes += base.bytes;
        deletes = base.deletes.clone();
        if let Some(pending) = &meta.deletes {
            let Some(new) = pending.take() else {
                return Err(Error::Metadata {
                    path: layout::table_pointer(schema, name),
                    message: "the rows this version deletes were not handed over".into(),
                });
            };
            deleted_now = apply_deletes(storage, dir, &mut files, &mut deletes, base, new).await?;
        }
        if written.rows == 0
            && deleted_now == 0
            && let Some(p) = previous.as_ref().filter(|p| p.version == base.version)
        {
            // Nothing to add, nothing to delete: the version stands.
            return keep_version(storage, dir, p, meta).await;
        }
    }
    files.extend(written.files);
    let mut pointer = TablePointer {
        schema: schema.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        files,
        rows: rows + written.rows - deleted_now,
        bytes: bytes + written.bytes,
        published_at: chrono::Utc::now().to_rfc3339(),
        columns,
        produced_by: meta.produced_by,
        inputs: meta.inputs,
        sql_hash: meta.sql_hash,
        content_hash: if meta.append_to.is_none() {
            written.content_hash
        } else {
            None
        },
        deletes,
        comments: previous
            .as_ref()
            .map(|p| p.comments.clone())
            .unwrap_or_default(),
    };
    pointer
        .comments
        .retain_columns(|c| pointer.columns.iter().any(|d| d.name == c));
    storage
        .put_json(&layout::table_pointer(schema, name), &pointer)
        .await?;
    prune_versions(storage, schema, name, &pointer, previous.as_ref()).await;
    Ok(Published {
        pointer,
        new_rows: written.rows,
        deleted_rows: deleted_now,
        unchanged: false,
    })
}

/// Keeps the current version `p` (with the new record of what it was
/// built from) and removes the unused new folder `dir`.
async fn keep_version(
    storage: &Storage,
    dir: &str,
    p: &TablePointer,
    meta: VersionMeta,
) -> Result<Published> {
    storage.delete_prefix(&format!("{dir}/")).await?;
    let mut kept = p.clone();
    kept.inputs = meta.inputs;
    kept.sql_hash = meta.sql_hash;
    storage
        .put_json(&layout::table_pointer(&p.schema, &p.name), &kept)
        .await?;
    Ok(Published {
        pointer: kept,
        new_rows: 0,
        deleted_rows: 0,
        unchanged: true,
    })
}

/// Adds `new` deletions to a version's `files` and `deletes`: a delete
/// file in `dir` per data file that loses rows (holding its earlier
/// deletions too), and data files left with no row dropped. Answers how
/// many rows were deleted that were not before.
async fn apply_deletes(
    storage: &Storage,
    dir: &str,
    files: &mut Vec<String>,
    deletes: &mut BTreeMap<String, DeleteFile>,
    base: &TablePointer,
    new: NewDeletes,
) -> Result<u64> {
    let mut deleted_now = 0;
    for (n, (data, (file_rows, rows))) in new.into_iter().enumerate() {
        if !files.contains(&data) {
            return Err(Error::Metadata {
                path: data,
                message: format!(
                    "cannot delete rows of a file version {} lacks",
                    base.version
                ),
            });
        }
        if rows
            .positions()
            .last()
            .is_some_and(|&r| u64::from(r) >= file_rows)
        {
            return Err(Error::Metadata {
                path: data,
                message: format!("deleted row past the file's {file_rows} rows"),
            });
        }
        let (before, all) = match base.deletes.get(&data) {
            Some(f) => (f.deleted, DeletedRows::load(storage, f).await?.union(&rows)),
            None => (0, rows),
        };
        deleted_now += all.len() as u64 - before;
        if all.len() as u64 == file_rows {
            files.retain(|f| f != &data);
            deletes.remove(&data);
            continue;
        }
        if all.len() as u64 == before {
            continue;
        }
        let path = format!("{dir}/deletes-{n:05}.parquet");
        storage.put_bytes(&path, all.encode()?).await?;
        deletes.insert(
            data,
            DeleteFile {
                path,
                deleted: all.len() as u64,
                file_rows,
            },
        );
    }
    Ok(deleted_now)
}

struct Written {
    files: Vec<String>,
    rows: u64,
    bytes: u64,
    schema: SchemaRef,
    content_hash: Option<String>,
}

/// An order-sensitive digest of a table's rows, for small tables.
struct ContentHash {
    state: u64,
    rows: u64,
    hashes: Vec<u64>,
}

impl ContentHash {
    fn new() -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
            rows: 0,
            hashes: Vec::new(),
        }
    }

    /// Adds a batch; false once the table is too large to be digested.
    fn add(&mut self, batch: &RecordBatch) -> Result<bool> {
        self.rows += batch.num_rows() as u64;
        if self.rows > CONTENT_HASH_ROWS {
            return Ok(false);
        }
        self.hashes.clear();
        self.hashes.resize(batch.num_rows(), 0);
        create_hashes_with_hasher(
            batch.columns(),
            &foldhash::fast::FixedState::with_seed(0x5eed),
            &mut self.hashes,
        )?;
        for &h in &self.hashes {
            self.state = (self.state.rotate_left(23) ^ h).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(true)
    }

    fn finish(self, schema: &Schema) -> Option<String> {
        (self.rows <= CONTENT_HASH_ROWS).then(|| {
            let mut h = self.state ^ self.rows;
            for f in schema.fields() {
                for b in f.name().bytes().chain(f.data_type().to_string().bytes()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            format!("{h:016x}")
        })
    }
}

/// Removes a table: the pointer first (so readers stop finding it), then data.
pub async fn drop_table(storage: &Storage, schema: &str, name: &str) -> Result<()> {
    storage.delete(&layout::table_pointer(schema, name)).await?;
    storage
        .delete_prefix(&format!("{}/", layout::table_dir(schema, name)))
        .await
}

/// Writes the stream's batches as Parquet files under `dir`; `may_be_empty`
/// allows writing no file at all (an append of nothing).
async fn write_files(
    storage: &Storage,
    dir: &str,
    mut stream: SendableRecordBatchStream,
    may_be_empty: bool,
) -> Result<Written> {
    let arrow_schema = stream.schema();
    let mut digest = Some(ContentHash::new());
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut files = Vec::new();
    let mut total_rows = 0u64;
    let mut total_bytes = 0u64;
    let mut writer: Option<(AsyncArrowWriter<BufWriter>, usize)> = None;

    loop {
        let next = stream.next().await.transpose()?;
        let finish_current = match (&writer, &next) {
            (Some((_, rows)), Some(_)) => *rows >= ROWS_PER_FILE,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if finish_current && let Some((w, _)) = writer.take() {
            w.close().await?;
        }
        // Always write at least one (possibly empty) file, so the version
        // carries its schema.
        let need_new = writer.is_none()
            && (next.as_ref().is_some_and(|b| b.num_rows() > 0)
                || (files.is_empty() && !may_be_empty));
        if need_new {
            let rel = format!("{dir}/part-{:05}.parquet", files.len());
            let object = BufWriter::new(storage.store(), storage.path(&rel));
            let w =
                AsyncArrowWriter::try_new(object, Arc::clone(&arrow_schema), Some(props.clone()))?;
            writer = Some((w, 0));
            files.push(rel);
        }
        match next {
            Some(batch) => {
                if let Some(d) = &mut digest
                    && !d.add(&batch)?
                {
                    digest = None;
                }
                if let Some((w, rows)) = writer.as_mut() {
                    w.write(&batch).await?;
                    *rows += batch.num_rows();
                }
                total_rows += batch.num_rows() as u64;
            }
            None => {
                if let Some((w, _)) = writer.take() {
                    w.close().await?;
                }
                break;
            }
        }
    }
    for (_, size) in storage.list(&format!("{dir}/")).await? {
        total_bytes += size;
    }
    Ok(Written {
        files,
        rows: total_rows,
        bytes: total_bytes,
        content_hash: digest.and_then(|d| d.finish(&arrow_schema)),
        schema: arrow_schema,
    })
}

async fn prune_versions(
    storage: &Storage,
    schema: &str,
    name: &str,
    current: &TablePointer,
    previous: Option<&TablePointer>,
) {
    let table_dir = layout::table_dir(schema, name);
    let versions = match storage.list_dirs(&format!("{table_dir}/")).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "could not list old versions");
            return;
        }
    };
    // An appended version holds files of earlier version folders: every
    // folder the current or the previous pointer names is kept.
    let mut named = current.version_dirs();
    named.extend(previous.map(TablePointer::version_dirs).unwrap_or_default());
    for version in versions {
        let keep = named.contains(&version);
        if !keep {
            let dir = format!("{table_dir}/{version}/");
            if let Err(e) = storage.delete_prefix(&dir).await {
                tracing::warn!(%dir, error = %e, "could not remove an old version");
            }
        }
    }
}

/// Version ids sort by creation time and never repeat.
fn new_version_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "v{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.6fZ"),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    /// A whole new version of `schema.name` (as a model or CREATE TABLE
    /// writes one, through `publish_version`).
    async fn publish_table(
        storage: &Storage,
        schema: &str,
        name: &str,
        stream: SendableRecordBatchStream,
        produced_by: Option<String>,
    ) -> Result<TablePointer> {
        let meta = VersionMeta {
            produced_by,
            ..VersionMeta::default()
        };
        Ok(publish_version(storage, schema, name, stream, meta)
            .await?
            .pointer)
    }

    fn stream_of(
        batches: Vec<Result<RecordBatch, datafusion::error::DataFusionError>>,
    ) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[test]
    fn arrow_types_round_trip_through_their_display_form() {
        let schema = Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("n", DataType::Decimal128(18, 2), false),
        ]);
        let back = schema_of(&columns_of(&schema), "t").unwrap();
        assert_eq!(back.as_ref(), &schema);
    }

    #[tokio::test]
    async fn failed_write_keeps_previous_version() {
        let storage = Storage::open("memory://").unwrap();
        let first = publish_table(
            &storage,
            "public",
            "t",
            stream_of(vec![Ok(batch(vec![1, 2]))]),
            None,
        )
        .await
        .unwrap();
        assert_eq!(first.rows, 2);
        let failing = stream_of(vec![
            Ok(batch(vec![3])),
            Err(datafusion::error::DataFusionError::Execution("boom".into())),
        ]);
        assert!(
            publish_table(&storage, "public", "t", failing, None)
                .await
                .is_err()
        );
        let current: TablePointer = storage
            .get_json(&layout::table_pointer("public", "t"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.version, first.version);
        let dirs = storage.list_dirs("data/public/t/").await.unwrap();
        assert_eq!(dirs, vec![first.version.clone()]);
    }

    #[tokio::test]
    async fn empty_result_still_publishes_a_file() {
        let storage = Storage::open("memory://").unwrap();
        let p = publish_table(&storage, "public", "e", stream_of(vec![]), None)
            .await
            .unwrap();
        assert_eq!(p.rows, 0);
        assert_eq!(p.files.len(), 1);
    }

    #[tokio::test]
    async fn appends_keep_earlier_files_through_pruning() {
        let storage = Storage::open("memory://").unwrap();
        let first = publish_table(
            &storage,
            "public",
            "a",
            stream_of(vec![Ok(batch(vec![1]))]),
            None,
        )
        .await
        .unwrap();
        let mut base = first.clone();
        for n in 2..5 {
            let meta = VersionMeta {
                append_to: Some(base.clone()),
                ..VersionMeta::default()
            };
            let p = publish_version(
                &storage,
                "public",
                "a",
                stream_of(vec![Ok(batch(vec![n]))]),
                meta,
            )
            .await
            .unwrap();
            assert_eq!(p.new_rows, 1);
            base = p.pointer;
        }
        assert_eq!(base.rows, 4);
        assert_eq!(base.files.len(), 4);
        // Every file the current version names is still there.
        for f in &base.files {
            assert!(
                storage.get_bytes(f).await.unwrap().is_some(),
                "{f} was pruned"
            );
        }
        // An unchanged rebuild keeps the version.
        let publish_b = || {
            publish_version(
                &storage,
                "public",
                "b",
                stream_of(vec![Ok(batch(vec![7, 8]))]),
                VersionMeta::default(),
            )
        };
        let same = publish_b().await.unwrap();
        let again = publish_b().await.unwrap();
        assert!(again.unchanged);
        assert_eq!(again.pointer.version, same.pointer.version);
    }

    /// Publishes `values` as a delta of `base`: new rows, and deleted
    /// positions per data file (by index in `base.files`).
    async fn delta(
        storage: &Storage,
        base: &TablePointer,
        values: Vec<i64>,
        deleted: &[(usize, u64, Vec<u32>)],
    ) -> Published {
        let pending = Arc::new(PendingDeletes::default());
        pending.put(
            deleted
                .iter()
                .map(|(f, rows, d)| (base.files[*f].clone(), (*rows, DeletedRows::new(d.clone()))))
                .collect(),
        );
        let meta = VersionMeta {
            append_to: Some(base.clone()),
            deletes: Some(pending),
            ..VersionMeta::default()
        };
        publish_version(
            storage,
            "public",
            "d",
            stream_of(vec![Ok(batch(values))]),
            meta,
        )
        .await
        .unwrap()
    }

    async fn live(storage: &Storage, p: &TablePointer) -> Vec<(usize, u32, i64)> {
        let rows = super::super::live_rows::LiveRows::read(storage, p)
            .await
            .unwrap();
        let mut out = Vec::new();
        for b in &rows.batches {
            let x = b
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for (i, &pos) in b.positions.iter().enumerate() {
                out.push((b.file, pos, x.value(i)));
            }
        }
        out
    }

    #[tokio::test]
    async fn deltas_delete_rows_without_rewriting_files() {
        let storage = Storage::open("memory://").unwrap();
        let first = publish_table(
            &storage,
            "public",
            "d",
            stream_of(vec![Ok(batch((0..6).collect()))]),
            None,
        )
        .await
        .unwrap();
        // Delete rows 1 and 4, add 100.
        let second = delta(&storage, &first, vec![100], &[(0, 6, vec![1, 4])]).await;
        assert_eq!((second.new_rows, second.deleted_rows), (1, 2));
        let p = second.pointer;
        assert_eq!(p.rows, 5);
        assert_eq!(p.files[0], first.files[0], "the first file is kept");
        assert_eq!(p.deleted_rows(), 2);
        assert_eq!(
            live(&storage, &p).await,
            vec![(0, 0, 0), (0, 2, 2), (0, 3, 3), (0, 5, 5), (1, 0, 100)]
        );
        // Deleting again: the earlier deletions stay; a row deleted twice
        // counts once.
        let third = delta(&storage, &p, vec![], &[(0, 6, vec![4, 5]), (1, 1, vec![0])]).await;
        assert_eq!(third.deleted_rows, 2);
        let p = third.pointer;
        assert_eq!(p.files.len(), 1, "a file with no row left is dropped");
        assert_eq!(p.rows, 3);
        assert_eq!(
            live(&storage, &p).await,
            vec![(0, 0, 0), (0, 2, 2), (0, 3, 3)]
        );
        // Pruning kept every file the pointer names.
        for f in p.files.iter().chain(p.deletes.values().map(|d| &d.path)) {
            assert!(storage.get_bytes(f).await.unwrap().is_some(), "{f} pruned");
        }
        // Nothing added, nothing deleted: the version stands.
        let same = delta(&storage, &p, vec![], &[]).await;
        assert!(same.unchanged);
        assert_eq!(same.pointer.version, p.version);
        // A delete past the end of a file is refused, and publishes nothing.
        let pending = Arc::new(PendingDeletes::default());
        pending.put([(p.files[0].clone(), (6, DeletedRows::new(vec![9])))].into());
        let meta = VersionMeta {
            append_to: Some(p.clone()),
            deletes: Some(pending),
            ..VersionMeta::default()
        };
        let bad = publish_version(&storage, "public", "d", stream_of(vec![]), meta).await;
        assert!(bad.unwrap_err().to_string().contains("past the file"));
        let current: TablePointer = storage
            .get_json(&layout::table_pointer("public", "d"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.version, p.version);
    }
}
