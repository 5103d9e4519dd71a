//! Column indexes: the `indexes` a model declares, as dbt-postgres spells
//! them (`{{ config(indexes=[{'columns': ['profile_id']}]) }}`). An index
//! holds, for each data file of the table, every row's hash of the indexed
//! columns' values ([`key_hashes`]), in file order. A lookup hashes the
//! values it wants the same way and reads only the rows whose hash is
//! among them, by Parquet row selection (see [`super::index_scan`]); a
//! hash collision only reads a row too many, as the query still compares
//! the values.
//!
//! Stored under `state/column_index/<table>/<columns>/` (see
//! [`layout`]), one [`u64_columns`] file per data file, named by its path:
//! data files never change once published (a later version only deletes
//! rows of them), so an index never goes stale. After each run that
//! publishes the table, [`refresh`] builds the indexes of its new files
//! (reading just the indexed columns) and removes those of files and
//! indexes the table no longer has; a lookup builds one that is missing.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use futures::{StreamExt, TryStreamExt};

use crate::identity::graph::Text;
use crate::identity::resolve::identifier_hash;
use crate::storage::publish::TablePointer;
use crate::storage::u64_columns::{self, Blocks};
use crate::storage::{Storage, layout};

/// Files indexed at once.
const PARALLEL: usize = 2;

/// Whether a column of type `t` can be indexed: text, integers, booleans,
/// dates and timestamps.
pub fn indexable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::Utf8View
            | DataType::LargeUtf8
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
    )
}

/// A column's values as the hash reads them: text by its bytes, every
/// other type by its value as a 64-bit integer.
enum Values<'a> {
    Text(Text<'a>),
    Signed(&'a datafusion::arrow::array::PrimitiveArray<Int64Type>),
    Unsigned(&'a datafusion::arrow::array::PrimitiveArray<UInt64Type>),
}

/// Each row's hash of `columns`' values (of equal length); None for a row
/// with a null value, which no equality lookup finds. The same values give
/// the same hash whichever text or integer type holds them.
pub fn key_hashes(columns: &[ArrayRef]) -> Result<Vec<Option<u64>>> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut hashes = vec![Some(0xcbf2_9ce4_8422_2325u64); rows];
    for column in columns {
        if !indexable(column.data_type()) {
            return Err(DataFusionError::Plan(format!(
                "a column of type {} cannot be indexed (text, integer, boolean, date or \
                 timestamp columns can)",
                column.data_type()
            )));
        }
        let canonical = match column.data_type() {
            DataType::Utf8 | DataType::Utf8View => Arc::clone(column),
            DataType::LargeUtf8 => cast(column, &DataType::Utf8)?,
            DataType::UInt64 => Arc::clone(column),
            _ => cast(column, &DataType::Int64)?,
        };
        let values = match canonical.data_type() {
            DataType::UInt64 => Values::Unsigned(canonical.as_primitive::<UInt64Type>()),
            DataType::Int64 => Values::Signed(canonical.as_primitive::<Int64Type>()),
            _ => Values::Text(Text::of(&canonical)?),
        };
        for (r, hash) in hashes.iter_mut().enumerate() {
            let Some(h) = hash else { continue };
            *hash = match &values {
                Values::Text(t) if !t.is_null(r) => {
                    let bytes = t.value(r).as_bytes();
                    Some(fnv(fnv(*h, &(bytes.len() as u64).to_le_bytes()), bytes))
                }
                Values::Signed(a) if !a.is_null(r) => Some(fnv(*h, &a.value(r).to_le_bytes())),
                Values::Unsigned(a) if !a.is_null(r) => Some(fnv(*h, &a.value(r).to_le_bytes())),
                _ => None,
            };
        }
    }
    Ok(hashes.into_iter().map(|h| h.map(finish)).collect())
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Spreads FNV's bits over the whole word (MurmurHash3's finaliser), so
/// that the low bits a hash set looks at vary with every byte.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The name an index's hashes are stored under: its columns.
fn stored_name(columns: &[String]) -> String {
    columns.join(",")
}

fn columns_digest(columns: &[String]) -> u64 {
    identifier_hash("columns", &stored_name(columns))
}

fn index_file(table: &str, columns: &[String], path: &str) -> String {
    layout::column_index_file(
        table,
        columns_digest(columns),
        identifier_hash("file", path),
    )
}

fn external(e: crate::error::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Each of `files` (data files of `table`, in order) as its number of
/// rows and its rows (ascending) whose hash by the index on `columns`
/// `wants` holds for; an index that is missing is built. A stored index
/// is scanned a block at a time ([`Blocks`]), not held.
pub async fn matching(
    storage: &Storage,
    table: &str,
    columns: &[String],
    files: &[String],
    wants: impl Fn(u64) -> bool,
) -> Result<Vec<(usize, Vec<u32>)>> {
    let name = stored_name(columns);
    let mut matched = Vec::with_capacity(files.len());
    for path in files {
        let rel = index_file(table, columns, path);
        let mut rows = Vec::new();
        let mut pick = |start: usize, hashes: &[u64]| {
            rows.extend(
                hashes
                    .iter()
                    .enumerate()
                    .filter(|&(_, &h)| wants(h))
                    .map(|(r, _)| (start + r) as u32),
            );
        };
        let total = match Blocks::open(storage, &rel, &[&name])
            .await
            .map_err(external)?
        {
            Some(blocks) => {
                blocks
                    .each(storage, &[0], |start, block| pick(start, block[0]))
                    .await
                    .map_err(external)?;
                blocks.rows()
            }
            None => {
                let hashes = build(storage, &rel, path, columns).await?;
                pick(0, &hashes);
                hashes.len()
            }
        };
        matched.push((total, rows));
    }
    Ok(matched)
}

/// Builds the index on `columns` of those of `files` that have none, and
/// removes the stored ones of other files.
async fn complete(
    storage: &Storage,
    table: &str,
    columns: &[String],
    files: &[String],
) -> crate::error::Result<()> {
    let dir = layout::column_index_columns_dir(table, columns_digest(columns));
    let stored: HashSet<String> = storage
        .list(&dir)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let wanted: Vec<(String, String)> = files
        .iter()
        .map(|p| (index_file(table, columns, p), p.clone()))
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(rel, _)| !stored.contains(rel))
        .map(|(_, p)| p.clone())
        .collect();
    futures::stream::iter(missing)
        .map(|path| {
            let storage = storage.clone();
            let rel = index_file(table, columns, &path);
            let columns = columns.to_vec();
            tokio::spawn(async move { build(&storage, &rel, &path, &columns).await })
        })
        .buffered(PARALLEL)
        .map(|joined| joined.map_err(|e| DataFusionError::External(Box::new(e)))?)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    let wanted: HashSet<&String> = wanted.iter().map(|(rel, _)| rel).collect();
    for rel in stored.iter().filter(|r| !wanted.contains(r)) {
        storage.delete(rel).await?;
    }
    Ok(())
}

/// Brings `table`'s indexes up to date with its version `pointer`: each of
/// `indexes` gets the hashes of the files that lack them, and the indexes
/// no longer declared are removed. Fails if an index names a column the
/// table lacks or cannot index.
pub async fn refresh(
    storage: &Storage,
    table: &str,
    indexes: &[Vec<String>],
    pointer: &TablePointer,
) -> crate::error::Result<()> {
    let schema = pointer.arrow_schema()?;
    for columns in indexes {
        for c in columns {
            let field = schema.field_with_name(c).map_err(|_| {
                crate::error::Error::DataFusion(DataFusionError::Plan(format!(
                    "index column \"{c}\" is not a column of {table}"
                )))
            })?;
            if !indexable(field.data_type()) {
                return Err(crate::error::Error::DataFusion(DataFusionError::Plan(
                    format!(
                        "index column \"{c}\" is of type {}, which cannot be indexed (text, \
                         integer, boolean, date or timestamp columns can)",
                        field.data_type()
                    ),
                )));
            }
        }
        complete(storage, table, columns, &pointer.files).await?;
    }
    let declared: HashSet<String> = indexes
        .iter()
        .map(|c| layout::column_index_columns_dir(table, columns_digest(c)))
        .collect();
    for dir in storage.list_dirs(&layout::column_index_dir(table)).await? {
        let dir = format!("{}{dir}/", layout::column_index_dir(table));
        if !declared.contains(&dir) {
            storage.delete_prefix(&dir).await?;
        }
    }
    Ok(())
}

/// Builds and stores the index on `columns` of the data file at `path`:
/// its hashes, in row order.
async fn build(storage: &Storage, rel: &str, path: &str, columns: &[String]) -> Result<Vec<u64>> {
    let batches = read_columns(storage, path, columns).await?;
    let mut hashes = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in &batches {
        // Rows with a null value are stored as 0: no lookup asks for them,
        // and a key hashing to 0 only reads them too.
        hashes.extend(
            key_hashes(batch.columns())?
                .into_iter()
                .map(|h| h.unwrap_or(0)),
        );
    }
    let bytes = u64_columns::encode(&[&stored_name(columns)], &[&hashes])?;
    storage.put_bytes(rel, bytes).await.map_err(external)?;
    Ok(hashes)
}

/// Every row of `columns` of the data file at `path`, in that order.
async fn read_columns(
    storage: &Storage,
    path: &str,
    columns: &[String],
) -> Result<Vec<RecordBatch>> {
    let reader = storage.parquet_reader(path, 0).await.map_err(external)?;
    let builder =
        ParquetRecordBatchStreamBuilder::new_with_options(reader, ArrowReaderOptions::new())
            .await?;
    let schema = Arc::clone(builder.schema());
    let positions = columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| {
                DataFusionError::Plan(format!("index column \"{c}\" is not in {path}"))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), positions.iter().copied());
    let batches: Vec<RecordBatch> = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()?
        .try_collect()
        .await?;
    // The reader returns the projected columns in file order.
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    batches
        .iter()
        .map(|b| {
            let picked: Vec<ArrayRef> = positions
                .iter()
                .map(|p| Arc::clone(b.column(sorted.binary_search(p).unwrap_or_default())))
                .collect();
            Ok(RecordBatch::try_new(
                Arc::new(datafusion::arrow::datatypes::Schema::new(
                    positions
                        .iter()
                        .map(|&p| schema.field(p).clone())
                        .collect::<Vec<_>>(),
                )),
                picked,
            )?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Date32Array, Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
    };

    use super::*;

    #[test]
    fn equal_values_hash_alike_in_any_type_and_nulls_not_at_all() {
        let text: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), Some("ab"), None])),
            Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3)])),
        ];
        let other: Vec<ArrayRef> = vec![
            Arc::new(StringViewArray::from(vec![
                Some("a"),
                Some("ab"),
                Some("x"),
            ])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ];
        let a = key_hashes(&text).unwrap();
        let b = key_hashes(&other).unwrap();
        assert_eq!(a[..2], b[..2]);
        assert_eq!(a[2], None);
        assert!(b[2].is_some());
        assert_ne!(a[0], a[1]);
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["a"]));
        let small: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        assert_eq!(key_hashes(&[large]).unwrap(), key_hashes(&[small]).unwrap());
        // Value boundaries count: ("ab", "c") is not ("a", "bc").
        let split = |x: &str, y: &str| {
            key_hashes(&[
                Arc::new(StringArray::from(vec![x])) as ArrayRef,
                Arc::new(StringArray::from(vec![y])),
            ])
            .unwrap()
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
        let day: ArrayRef = Arc::new(Date32Array::from(vec![19000]));
        let int: ArrayRef = Arc::new(Int64Array::from(vec![19000]));
        assert_eq!(key_hashes(&[day]).unwrap(), key_hashes(&[int]).unwrap());
        let float: ArrayRef = Arc::new(datafusion::arrow::array::Float64Array::from(vec![1.0]));
        assert!(key_hashes(&[float]).is_err());
    }
}
