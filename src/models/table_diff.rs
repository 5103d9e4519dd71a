//! A rebuilt table published as its changes. A model rebuilt whole (a
//! `table` model on every run: its rows may depend on all of its input,
//! as a rank over every row does) often yields mostly the rows it had.
//! When the current version is small enough to hold in memory
//! ([`MAX_ROWS`]), the new rows are compared with its live rows, whole
//! rows as multisets: if at most a fifth of its rows are gone or new, the
//! version is published as the current files less the rows that are gone
//! plus a file of the new ones — merge-on-read, as an incremental merge
//! is (and compacted the same way when deleted rows pile up). Otherwise
//! the new rows are written whole.
//!
//! Models that read the table incrementally follow its changes (see
//! [`super::changed`]): a rank table whose few changed rows are published
//! as such lets them recompute those keys only. And writing a few rows
//! costs less than writing the table again.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::error::Result;
use crate::storage::Storage;
use crate::storage::deletes::{DeletedRows, NewDeletes};
use crate::storage::live_rows::LiveRows;
use crate::storage::publish::TablePointer;

/// Versions of more rows than this are written whole without comparing.
pub const MAX_ROWS: u64 = 1_000_000;

/// Nor are new rows compared once they hold more memory than this.
const MAX_BYTES: usize = 512 << 20;

/// What to publish.
pub enum Rebuilt {
    /// The current version less `deletes`, plus `appended`.
    Changes {
        appended: Vec<RecordBatch>,
        deletes: NewDeletes,
    },
    /// Every row, as a new version of its own.
    Whole(SendableRecordBatchStream),
}

/// Whether [`compare`] may be offered a rebuild of `current`.
pub fn comparable(current: &TablePointer) -> bool {
    current.rows <= MAX_ROWS
}

/// Compares the rows of `stream` (a whole rebuild, of `current`'s
/// columns) with `current`'s live rows.
pub async fn compare(
    storage: &Storage,
    current: &TablePointer,
    mut stream: SendableRecordBatchStream,
) -> Result<Rebuilt> {
    let schema = current.arrow_schema()?;
    let produced = stream.schema();
    // More new rows than this cannot be a small change.
    let limit = current.rows + current.rows / 5;
    let (mut batches, mut rows, mut bytes) = (Vec::new(), 0u64, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        bytes += batch.get_array_memory_size();
        batches.push(batch);
        if rows > limit || bytes > MAX_BYTES {
            let all = futures::stream::iter(batches.into_iter().map(Ok)).chain(stream);
            return Ok(Rebuilt::Whole(Box::pin(RecordBatchStreamAdapter::new(
                produced, all,
            ))));
        }
    }
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let live = LiveRows::read(storage, current).await?;
    let (appended, deletes) = diff(&schema, &live, &batches)?;
    let appended_rows: usize = appended.iter().map(RecordBatch::num_rows).sum();
    let deleted_rows: usize = deletes.values().map(|(_, d)| d.len()).sum();
    tracing::debug!(
        table = %current.name,
        appended = appended_rows,
        deleted = deleted_rows,
        rows = live.rows(),
        "rebuilt table compared with its current version"
    );
    if ((appended_rows + deleted_rows) as u64) * 5 > current.rows {
        return Ok(Rebuilt::Whole(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))));
    }
    Ok(Rebuilt::Changes { appended, deletes })
}

/// The rows of `new` that `live` lacks, and the positions of `live`'s
/// rows that `new` lacks (equal rows pair off one to one).
fn diff(
    schema: &SchemaRef,
    live: &LiveRows,
    new: &[RecordBatch],
) -> Result<(Vec<RecordBatch>, NewDeletes)> {
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let old = live
        .batches
        .iter()
        .map(|b| converter.convert_columns(b.batch.columns()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // Each distinct old row heads a chain of the old rows equal to it
    // (numbered across batches); a new row equal to it takes the head.
    const END: u32 = u32::MAX;
    let total: usize = old.iter().map(|r| r.num_rows()).sum();
    let mut next = vec![END; total];
    let mut heads: hashbrown::HashMap<&[u8], u32, foldhash::fast::RandomState> =
        hashbrown::HashMap::with_capacity_and_hasher(total, Default::default());
    let mut numbered = 0u32;
    for rows in &old {
        for row in rows.iter() {
            match heads.entry(row.data()) {
                hashbrown::hash_map::Entry::Occupied(mut e) => {
                    next[numbered as usize] = *e.get();
                    e.insert(numbered);
                }
                hashbrown::hash_map::Entry::Vacant(e) => {
                    e.insert(numbered);
                }
            }
            numbered += 1;
        }
    }
    let mut kept = vec![false; total];
    let mut appended = Vec::new();
    for batch in new {
        let rows = converter.convert_columns(batch.columns())?;
        let mut picked = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            match heads.get_mut(row.data()) {
                Some(head) if *head != END => {
                    kept[*head as usize] = true;
                    *head = next[*head as usize];
                }
                _ => picked.push(r as u32),
            }
        }
        if !picked.is_empty() {
            appended.push(take_record_batch(batch, &UInt32Array::from(picked))?);
        }
    }
    let mut positions: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
    let mut numbered = 0usize;
    for batch in &live.batches {
        for &position in &batch.positions {
            if !kept[numbered] {
                positions.entry(batch.file).or_default().push(position);
            }
            numbered += 1;
        }
    }
    let deletes = positions
        .into_iter()
        .map(|(file, rows)| {
            (
                live.files[file].clone(),
                (live.file_rows[file], DeletedRows::new(rows)),
            )
        })
        .collect();
    Ok((appended, deletes))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use futures::TryStreamExt;

    use super::*;
    use crate::storage::publish::{VersionMeta, publish_version};

    fn rows(values: &[(&str, i64)]) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(values.iter().map(|v| v.0))),
                Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.1))),
            ],
        )
        .unwrap();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    fn pairs(batches: &[RecordBatch]) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let k = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend((0..b.num_rows()).map(|r| (k.value(r).to_owned(), n.value(r))));
        }
        out
    }

    #[tokio::test]
    async fn equal_rows_pair_off_and_only_changes_are_published() {
        let storage = Storage::open("memory://").unwrap();
        let mut old: Vec<(String, i64)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        old.push(("k7".into(), 7)); // a duplicate row
        let old_refs: Vec<(&str, i64)> = old.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let current = publish_version(
            &storage,
            "public",
            "t",
            rows(&old_refs),
            VersionMeta::default(),
        )
        .await
        .unwrap()
        .pointer;

        // k3 changes, one k7 of two goes, k100 is new; in another order.
        let mut new: Vec<(String, i64)> = (0..100)
            .rev()
            .map(|i| (format!("k{i}"), if i == 3 { 33 } else { i }))
            .collect();
        new.push(("k100".into(), 100));
        let new_refs: Vec<(&str, i64)> = new.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let Rebuilt::Changes { appended, deletes } =
            compare(&storage, &current, rows(&new_refs)).await.unwrap()
        else {
            panic!("a small change is published as changes");
        };
        let mut added = pairs(&appended);
        added.sort();
        assert_eq!(added, vec![("k100".into(), 100), ("k3".into(), 33)]);
        let (file_rows, gone) = &deletes[&current.files[0]];
        assert_eq!(*file_rows, 101);
        // Row 3 (k3 = 3) and one of the two k7 rows (7 or 100).
        assert_eq!(gone.len(), 2);
        assert_eq!(gone.positions()[0], 3);
        assert!([7, 100].contains(&gone.positions()[1]));

        // The same rows: nothing to publish.
        let Rebuilt::Changes { appended, deletes } =
            compare(&storage, &current, rows(&old_refs)).await.unwrap()
        else {
            panic!("equal rows are no change");
        };
        assert!(appended.is_empty() && deletes.is_empty());

        // Most rows changed: written whole, every row.
        let changed: Vec<(String, i64)> = (0..100).map(|i| (format!("k{i}"), -i)).collect();
        let changed_refs: Vec<(&str, i64)> =
            changed.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let Rebuilt::Whole(stream) = compare(&storage, &current, rows(&changed_refs))
            .await
            .unwrap()
        else {
            panic!("a large change is written whole");
        };
        let all: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert_eq!(pairs(&all).len(), 100);
    }
}
