//! A table's changes since a version a reader saw (change data capture, as
//! Delta Lake's change data feed or a Snowflake stream): the rows inserted
//! since, and the rows deleted since.
//!
//! Versions share their files ([`super::publish`]): a version that builds
//! on an earlier one keeps its data files, adds new ones and deletes rows
//! of the kept ones by delete files ([`super::deletes`]). So what changed
//! between the version a model read (its [`InputFiles`], which name the
//! delete file of each data file) and the current one is:
//!
//! - **inserted**: the live rows of the data files the reader had not seen;
//! - **deleted**: the rows of the files it had seen that are deleted now
//!   and were not then (a file no longer listed lost all its live rows).
//!
//! The changes cannot be told when a file the reader saw is gone from the
//! storage (an older version was pruned, the table was dropped) or its
//! delete file is: then [`changes_since`] answers None and the reader
//! rebuilds from the whole table. It answers None too when the changes
//! are larger than `max_rows`, where reading the whole table is cheaper.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::RecordBatch;

use super::Storage;
use super::deletes::{DeleteFile, DeletedRows};
use super::live_rows::LiveRows;
use super::publish::{InputFiles, TablePointer};
use crate::error::Result;

/// Rows inserted into and deleted from a table between two versions, with
/// the table's current columns.
#[derive(Debug, Default)]
pub struct Changes {
    pub inserted: Vec<RecordBatch>,
    pub deleted: Vec<RecordBatch>,
}

impl Changes {
    pub fn rows(&self) -> usize {
        self.inserted
            .iter()
            .chain(&self.deleted)
            .map(RecordBatch::num_rows)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }
}

/// The changes of the table `now` since the version `then` describes;
/// None when they cannot be told or exceed `max_rows` (see the module
/// docs).
pub async fn changes_since(
    storage: &Storage,
    then: &InputFiles,
    now: &TablePointer,
    max_rows: u64,
) -> Result<Option<Changes>> {
    if then.version.as_deref() == Some(now.version.as_str()) {
        return Ok(Some(Changes::default()));
    }
    if then.version.is_none()
        || then
            .deleted
            .keys()
            .any(|f| !then.delete_files.contains_key(f))
    {
        return Ok(None);
    }
    let seen: BTreeSet<&str> = then.files.iter().map(|(f, _)| f.as_str()).collect();
    let current: BTreeSet<&str> = now.files.iter().map(String::as_str).collect();
    // What each seen file had deleted then, to tell what is deleted since.
    let earlier = |file: &str| DeleteFile {
        path: then.delete_files.get(file).cloned().unwrap_or_default(),
        deleted: then.deleted.get(file).copied().unwrap_or(0),
        file_rows: 0,
    };
    let mut estimate: u64 = 0;
    let mut gone: Vec<String> = Vec::new();
    let mut newly_deleted: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (index, file) in now.files.iter().enumerate() {
        if !seen.contains(file.as_str()) {
            continue;
        }
        let Some(now_deleted) = now.deletes.get(file) else {
            continue;
        };
        let before = then.deleted.get(file).copied().unwrap_or(0);
        if now_deleted.deleted == before {
            continue;
        }
        let all = match DeletedRows::load(storage, now_deleted).await {
            Ok(rows) => rows,
            Err(_) => return Ok(None),
        };
        let since: Vec<u32> = if before == 0 {
            all.positions().to_vec()
        } else {
            let Ok(old) = DeletedRows::load(storage, &earlier(file)).await else {
                return Ok(None);
            };
            let old: BTreeSet<u32> = old.positions().iter().copied().collect();
            all.positions()
                .iter()
                .copied()
                .filter(|p| !old.contains(p))
                .collect()
        };
        estimate += since.len() as u64;
        newly_deleted.insert(index, since);
    }
    for (file, _) in &then.files {
        if !current.contains(file.as_str()) {
            gone.push(file.clone());
        }
    }
    if !then.files.is_empty() && gone.len() == then.files.len() {
        // Rewritten whole: nothing to gain over reading it whole.
        return Ok(None);
    }
    let inserted_files: Vec<String> = now
        .files
        .iter()
        .filter(|f| !seen.contains(f.as_str()))
        .cloned()
        .collect();
    estimate += inserted_files.len() as u64; // refined below, as rows are read
    if estimate > max_rows {
        return Ok(None);
    }
    let mut changes = Changes::default();
    // Inserted: the live rows of the files the reader had not seen.
    if !inserted_files.is_empty() {
        let part = subset(now, &inserted_files, |f| now.deletes.get(f).cloned());
        match LiveRows::read(storage, &part).await {
            Ok(rows) => changes.inserted = rows.batches.into_iter().map(|b| b.batch).collect(),
            Err(_) => return Ok(None),
        }
    }
    // Deleted: rows of kept files deleted since, then files gone whole
    // (their rows live then).
    if !newly_deleted.is_empty() {
        match LiveRows::read_positions(storage, now, &newly_deleted).await {
            Ok(rows) => changes.deleted = rows.batches.into_iter().map(|b| b.batch).collect(),
            Err(_) => return Ok(None),
        }
    }
    if !gone.is_empty() {
        let part = subset(now, &gone, |f| {
            then.delete_files.contains_key(f).then(|| earlier(f))
        });
        match LiveRows::read(storage, &part).await {
            Ok(rows) => changes
                .deleted
                .extend(rows.batches.into_iter().map(|b| b.batch)),
            Err(_) => return Ok(None),
        }
    }
    if changes.rows() as u64 > max_rows {
        return Ok(None);
    }
    Ok(Some(changes))
}

/// `pointer` narrowed to `files`, each with the delete file `deletes`
/// gives it.
fn subset(
    pointer: &TablePointer,
    files: &[String],
    deletes: impl Fn(&str) -> Option<DeleteFile>,
) -> TablePointer {
    TablePointer {
        files: files.to_vec(),
        deletes: files
            .iter()
            .filter_map(|f| deletes(f).map(|d| (f.clone(), d)))
            .collect(),
        ..pointer.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;
    use crate::storage::deletes::PendingDeletes;
    use crate::storage::publish::{VersionMeta, publish_version};

    /// Publishes `values` as new rows of table `t`, deleting `deletes`
    /// (data file index in `base`, its rows, positions) from `base`.
    async fn publish(
        storage: &Storage,
        base: Option<&TablePointer>,
        values: Vec<i64>,
        deletes: &[(usize, u64, Vec<u32>)],
    ) -> TablePointer {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(values))],
        )
        .unwrap();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ));
        let pending = base.map(|b| {
            let pending = Arc::new(PendingDeletes::default());
            pending.put(
                deletes
                    .iter()
                    .map(|(f, rows, at)| {
                        (b.files[*f].clone(), (*rows, DeletedRows::new(at.clone())))
                    })
                    .collect(),
            );
            pending
        });
        let meta = VersionMeta {
            append_to: base.cloned(),
            deletes: pending,
            ..VersionMeta::default()
        };
        publish_version(storage, "public", "t", stream, meta)
            .await
            .unwrap()
            .pointer
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        let mut out: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
            })
            .collect();
        out.sort_unstable();
        out
    }

    async fn since(
        storage: &Storage,
        then: &TablePointer,
        now: &TablePointer,
    ) -> (Vec<i64>, Vec<i64>) {
        let changes = changes_since(storage, &InputFiles::of_table(then), now, 100)
            .await
            .unwrap()
            .expect("changes can be told");
        (values(&changes.inserted), values(&changes.deleted))
    }

    #[tokio::test]
    async fn a_reader_sees_the_rows_inserted_and_deleted_since_its_version() {
        let storage = Storage::open("memory://").unwrap();
        let v1 = publish(&storage, None, (0..6).collect(), &[]).await;
        assert_eq!(since(&storage, &v1, &v1).await, (vec![], vec![]));
        // Rows 1 and 4 deleted, 100 and 101 inserted.
        let v2 = publish(&storage, Some(&v1), vec![100, 101], &[(0, 6, vec![1, 4])]).await;
        assert_eq!(
            since(&storage, &v1, &v2).await,
            (vec![100, 101], vec![1, 4])
        );
        // Row 4 again (already gone) and 5; 100 too: only what v2 still had.
        let v3 = publish(
            &storage,
            Some(&v2),
            vec![],
            &[(0, 6, vec![4, 5]), (1, 2, vec![0])],
        )
        .await;
        assert_eq!(since(&storage, &v2, &v3).await, (vec![], vec![5, 100]));
        // Two versions at once: 100 came and went, so it is no change.
        assert_eq!(since(&storage, &v1, &v3).await, (vec![101], vec![1, 4, 5]));
        // A file with no row left is dropped from the version; its rows
        // that the reader saw are deleted ones.
        let v4 = publish(&storage, Some(&v3), vec![7], &[(1, 2, vec![1])]).await;
        assert!(!v4.files.contains(&v3.files[1]));
        assert_eq!(since(&storage, &v3, &v4).await, (vec![7], vec![101]));
        // Past the limit, or from a version rewritten whole: not told.
        let limited = changes_since(&storage, &InputFiles::of_table(&v1), &v4, 2).await;
        assert!(limited.unwrap().is_none());
        let rewritten = publish(&storage, None, vec![1, 2], &[]).await;
        let whole = changes_since(&storage, &InputFiles::of_table(&v4), &rewritten, 100).await;
        assert!(whole.unwrap().is_none());
    }
}
