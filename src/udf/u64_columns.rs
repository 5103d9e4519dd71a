//! Files of plain `u64` columns (the indexes' hashes and keys), stored as
//! uncompressed Parquet: hashes do not compress, and statistics on them
//! prune nothing.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

fn schema(names: &[&str]) -> Arc<Schema> {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::UInt64, false))
            .collect::<Vec<_>>(),
    ))
}

/// Columns `names` (of equal length) as a Parquet file.
pub fn encode(names: &[&str], columns: &[&[u64]]) -> Result<Bytes> {
    let schema = schema(names);
    let rows = columns.first().map_or(0, |c| c.len());
    if columns.len() != names.len() || columns.iter().any(|c| c.len() != rows) {
        return Err(DataFusionError::Internal(
            "u64 columns of unequal lengths".into(),
        ));
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .build();
    let mut out = Vec::with_capacity(rows * 8 * names.len() + 1024);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props))?;
    for start in (0..rows).step_by(1 << 20) {
        let end = (start + (1 << 20)).min(rows);
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| Arc::new(UInt64Array::from(c[start..end].to_vec())) as ArrayRef)
            .collect();
        writer.write(&RecordBatch::try_new(Arc::clone(&schema), arrays)?)?;
    }
    writer.close()?;
    Ok(Bytes::from(out))
}

/// The stored columns; None if the file does not hold exactly `names`.
pub fn decode(bytes: Bytes, names: &[&str]) -> Result<Option<Vec<Vec<u64>>>> {
    let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(bytes) else {
        return Ok(None);
    };
    if builder.schema().fields() != schema(names).fields() {
        return Ok(None);
    }
    let mut out = vec![Vec::new(); names.len()];
    for batch in builder.with_batch_size(1 << 16).build()? {
        let batch = batch?;
        for (c, column) in out.iter_mut().enumerate() {
            match batch.column(c).as_any().downcast_ref::<UInt64Array>() {
                Some(a) => column.extend_from_slice(a.values()),
                None => return Ok(None),
            }
        }
    }
    Ok(Some(out))
}
