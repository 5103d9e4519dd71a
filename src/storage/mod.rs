//! The storage root: one URL (`--data`) under which everything lives, reached
//! only through `object_store` so that a local folder, `memory://` and `s3://`
//! differ by configuration alone.
//!
//! Invariants: profiledb never changes or deletes a file in `raw/` (outside
//! explicit erasure jobs) and only adds whole new files there, each in one
//! put (`COPY … FROM STDIN`); everything else is published atomically (see
//! [`publish`]).

pub mod changes;
pub mod comments;
pub mod deletes;
pub mod layout;
pub mod live_rows;
pub mod publish;
pub mod u64_columns;

use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub modified: i64,
    pub e_tag: Option<String>,
}

/// An opened storage root.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The root as a URL ending in `/`, e.g. `file:///srv/cdp/`.
    root_url: Url,
    /// The root's path inside `store`.
    prefix: Path,
    /// `scheme://authority`, under which DataFusion finds `store`.
    store_url: ObjectStoreUrl,
    /// The root's folder, for a local root: [`Self::read_into`] reads
    /// files there directly.
    local: Option<Arc<std::path::Path>>,
}

impl Storage {
    /// Opens a root given as a local path, `file://`, or `memory://` URL.
    /// Local folders are created if missing.
    pub fn open(root: &str) -> Result<Self> {
        let invalid = |message: String| Error::InvalidRoot {
            root: root.to_owned(),
            message,
        };
        let url = if root.contains("://") {
            Url::parse(root).map_err(|e| invalid(e.to_string()))?
        } else {
            let path = std::path::Path::new(root);
            std::fs::create_dir_all(path)
                .map_err(|e| Error::io(format!("creating storage root {root}"), e))?;
            let abs = std::fs::canonicalize(path)
                .map_err(|e| Error::io(format!("resolving storage root {root}"), e))?;
            Url::from_directory_path(&abs)
                .map_err(|()| invalid("not an absolute directory path".into()))?
        };
        let mut root_url = url;
        if !root_url.path().ends_with('/') {
            let p = format!("{}/", root_url.path());
            root_url.set_path(&p);
        }
        let mut local = None;
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match root_url.scheme() {
            "file" => {
                let dir = root_url
                    .to_file_path()
                    .map_err(|()| invalid("file URL is not a local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("creating storage root {root}"), e))?;
                let (store, prefix) = datafusion::object_store::parse_url(&root_url)
                    .map_err(|e| invalid(e.to_string()))?;
                local = Some(Arc::from(dir.as_path()));
                (Arc::from(store), prefix)
            }
            "memory" => {
                let (store, prefix) = datafusion::object_store::parse_url(&root_url)
                    .map_err(|e| invalid(e.to_string()))?;
                (Arc::from(store), prefix)
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other}:// (use a local path, file:// or memory://)"
                )));
            }
        };
        let store_url = ObjectStoreUrl::parse(format!(
            "{}://{}",
            root_url.scheme(),
            root_url.host_str().unwrap_or("")
        ))?;
        Ok(Self {
            store,
            root_url,
            prefix,
            store_url,
            local,
        })
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Where DataFusion must find [`Self::store`].
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    pub fn root_url(&self) -> &Url {
        &self.root_url
    }

    /// The object path of `rel` (a `/`-separated path below the root).
    pub fn path(&self, rel: &str) -> Path {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        Path::from_iter(parts)
    }

    /// `rel` relative to the root, for an object path below it.
    pub fn relative(&self, path: &Path) -> String {
        path.prefix_match(&self.prefix)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// A DataFusion listing URL for `rel`; a trailing `/` makes it a directory.
    pub fn listing_url(&self, rel: &str) -> Result<ListingTableUrl> {
        let url = self.root_url.join(rel).map_err(|e| Error::InvalidRoot {
            root: self.root_url.to_string(),
            message: format!("joining {rel}: {e}"),
        })?;
        Ok(ListingTableUrl::parse(url.as_str())?)
    }

    pub async fn get_bytes(&self, rel: &str) -> Result<Option<Bytes>> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::storage(&path, e))?)),
            Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// The size of the object at `rel`; None if there is none.
    pub async fn size(&self, rel: &str) -> Result<Option<u64>> {
        let path = self.path(rel);
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Bytes `range` of the object at `rel`.
    pub async fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = self.path(rel);
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| Error::storage(&path, e))
    }

    /// Bytes `range` of the object at `rel` into `buf` (resized to the
    /// range's length), which is handed back. A scan that reads a large
    /// file a block at a time through one buffer touches no fresh memory
    /// after the first block: `get_range` allocates (and zeroes) a new
    /// buffer for every read, and fresh pages cost the kernel more to
    /// zero than the read costs to copy. A local root's files are read
    /// directly; another store's through `get_range`.
    pub async fn read_into(
        &self,
        rel: &str,
        range: std::ops::Range<u64>,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        #[cfg(unix)]
        if let Some(dir) = &self.local
            && rel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        {
            let file = dir.join(rel);
            return tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                buf.resize(len, 0);
                std::fs::File::open(&file)
                    .and_then(|f| f.read_exact_at(&mut buf, range.start))
                    .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
                Ok(buf)
            })
            .await
            .map_err(|e| Error::io("reading a stored file", std::io::Error::other(e)))?;
        }
        let bytes = self.get_range(rel, range).await?;
        buf.clear();
        buf.extend_from_slice(&bytes);
        Ok(buf)
    }

    /// An async Parquet reader of the file at `rel`; `size` 0: unknown
    /// (table files are recorded without their size), asked of the store.
    pub async fn parquet_reader(&self, rel: &str, size: u64) -> Result<Box<dyn AsyncFileReader>> {
        let location = self.path(rel);
        let size = match size {
            0 => {
                self.store
                    .head(&location)
                    .await
                    .map_err(|e| Error::storage(&location, e))?
                    .size
            }
            n => n,
        };
        let file = PartitionedFile::new(location.to_string(), size);
        Ok(
            DefaultParquetFileReaderFactory::new(Arc::clone(&self.store)).create_reader(
                0,
                file,
                None,
                &ExecutionPlanMetricsSet::new(),
            )?,
        )
    }

    pub async fn get_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes(rel).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Metadata {
                path: rel.to_owned(),
                message: e.to_string(),
            })
    }

    /// Writes a whole object. A single `put` is atomic on every store we
    /// support (local files are written to a temporary name and renamed).
    pub async fn put_bytes(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(rel);
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(())
    }

    pub async fn put_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Metadata {
            path: rel.to_owned(),
            message: e.to_string(),
        })?;
        self.put_bytes(rel, Bytes::from(bytes)).await
    }

    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        match self.store.delete(&path).await {
            Ok(()) | Err(datafusion::object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Copies one object (a hard link on a local root, a server-side copy
    /// on S3).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let from = self.path(from);
        self.store
            .copy(&from, &self.path(to))
            .await
            .map_err(|e| Error::storage(&from, e))
    }

    /// Every object below `rel`, as `(relative path, size)`, sorted.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_detailed(rel)
            .await?
            .into_iter()
            .map(|o| (o.path, o.size))
            .collect())
    }

    /// Every object below `rel` with what identifies its version, sorted.
    pub async fn list_detailed(&self, rel: &str) -> Result<Vec<Listed>> {
        let path = self.path(rel);
        let objects: Vec<_> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| Error::storage(&path, e))?;
        let mut out: Vec<Listed> = objects
            .into_iter()
            .map(|m| Listed {
                path: self.relative(&m.location),
                size: m.size,
                modified: m.last_modified.timestamp_micros(),
                e_tag: m.e_tag,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The immediate sub-folders of `rel`.
    pub async fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        let listing = self
            .store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        let mut dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Deletes every object below `rel`.
    pub async fn delete_prefix(&self, rel: &str) -> Result<()> {
        for (object, _) in self.list(rel).await? {
            self.delete(&object).await?;
        }
        Ok(())
    }

    /// True when nothing at all is stored below `rel`.
    pub async fn is_empty(&self, rel: &str) -> Result<bool> {
        let path = self.path(rel);
        let first = self
            .store
            .list(Some(&path))
            .try_next()
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(first.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_root_round_trips_json() {
        let s = Storage::open("memory://").unwrap();
        assert!(s.is_empty("").await.unwrap());
        s.put_json("catalog/x.json", &vec![1, 2]).await.unwrap();
        let v: Vec<i32> = s.get_json("catalog/x.json").await.unwrap().unwrap();
        assert_eq!(v, vec![1, 2]);
        assert_eq!(s.list_dirs("").await.unwrap(), vec!["catalog".to_owned()]);
        assert!(s.get_json::<Vec<i32>>("nope.json").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn local_root_paths_are_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap()).unwrap();
        s.put_bytes("raw/events/a.parquet", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let listed = s.list("raw").await.unwrap();
        assert_eq!(listed, vec![("raw/events/a.parquet".to_owned(), 1)]);
        assert!(dir.path().join("raw/events/a.parquet").exists());
        assert!(
            s.listing_url("raw/events/")
                .unwrap()
                .as_str()
                .starts_with("file://")
        );
    }
}
