//! The graph index: for each data file of `resolve_identities`' output
//! table, every row's [`RowKey`] (identifier hash, component, profile,
//! kind), in file order. An incremental run that publishes a delta learns
//! the scope from these keys and then reads just the rows it replaces or
//! needs (the touched components, the redirects, some lone rejections),
//! by Parquet row selection, instead of decoding the whole previous graph.
//!
//! Stored under `state/graph_index/<table>/` (see [`layout`]), one file per
//! data file, named by its path: data files never change once published
//! (a later version only deletes rows of them, see
//! [`crate::storage::deletes`]), so an index never goes stale. A missing
//! one is built by reading its data file once; the indexes of files the
//! table no longer has are deleted.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};

use crate::identity::incremental::{RowKey, UnreadFile, as_output};
use crate::identity::resolve::identifier_hash;
use crate::storage::publish::TablePointer;
use crate::storage::{Storage, deletes, layout, live_rows, u64_columns};

const COLUMNS: [&str; 4] = ["id_hash", "component", "profile", "flags"];

/// Files indexed at once.
const PARALLEL: usize = 2;

/// The keys of every live row of `pointer`'s version of `table`, per data
/// file, building the indexes that are missing.
pub async fn load(
    storage: &Storage,
    table: &str,
    pointer: &TablePointer,
) -> Result<Vec<UnreadFile>> {
    let external = |e: crate::error::Error| DataFusionError::External(Box::new(e));
    let deleted = deletes::load_all(storage, &pointer.deletes)
        .await
        .map_err(external)?;
    let schema = pointer.arrow_schema().map_err(external)?;
    let per_file: Vec<[ScalarBuffer<u64>; 4]> =
        futures::stream::iter(pointer.files.iter().cloned())
            .map(|path| {
                let (storage, schema) = (storage.clone(), Arc::clone(&schema));
                let rel = index_file(table, &path);
                tokio::spawn(async move { load_or_build(&storage, &rel, &path, &schema).await })
            })
            .buffered(PARALLEL)
            .map(|joined| joined.map_err(|e| DataFusionError::External(Box::new(e)))?)
            .try_collect()
            .await?;
    let out = pointer
        .files
        .iter()
        .zip(per_file)
        .map(|(path, columns)| {
            let gone = deleted.get(path).map(|(_, d)| d.positions()).unwrap_or(&[]);
            UnreadFile::new(columns, gone)
        })
        .collect();
    // Indexes of files the table no longer has.
    let wanted: HashSet<String> = pointer.files.iter().map(|p| index_file(table, p)).collect();
    let stored = storage
        .list(&layout::graph_index_dir(table))
        .await
        .map_err(external)?;
    for (rel, _) in stored {
        if !wanted.contains(&rel) {
            storage.delete(&rel).await.map_err(external)?;
        }
    }
    Ok(out)
}

fn index_file(table: &str, path: &str) -> String {
    layout::graph_index_file(table, identifier_hash("graph", path))
}

async fn load_or_build(
    storage: &Storage,
    rel: &str,
    path: &str,
    schema: &SchemaRef,
) -> Result<[ScalarBuffer<u64>; 4]> {
    let external = |e: crate::error::Error| DataFusionError::External(Box::new(e));
    if let Some(bytes) = storage.get_bytes(rel).await.map_err(external)?
        && let Some(columns) = u64_columns::decode(bytes, &COLUMNS)?
        && let Ok(columns) = <[ScalarBuffer<u64>; 4]>::try_from(columns)
    {
        return Ok(columns);
    }
    let batches = live_rows::read_whole_file(storage, path, schema)
        .await
        .map_err(external)?;
    let mut columns: [Vec<u64>; 4] = Default::default();
    for b in &batches {
        for k in RowKey::of_batch(&as_output(b)?) {
            for (c, v) in columns.iter_mut().zip(k.to_u64s()) {
                c.push(v);
            }
        }
    }
    let slices: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
    let bytes = u64_columns::encode(&COLUMNS, &slices)?;
    storage.put_bytes(rel, bytes).await.map_err(external)?;
    Ok(columns.map(ScalarBuffer::from))
}
