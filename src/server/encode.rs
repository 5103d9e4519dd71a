//! Arrow record batches → PostgreSQL rows, in text or binary format per
//! column as the client asked. Column types come from the one mapping in
//! [`crate::catalog::pg_types`], so what Describe announces is what is sent.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyEncoder, DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::ToSql;

use crate::catalog::pg_types;

/// The wire type of an Arrow column.
pub fn wire_type(dt: &DataType) -> Type {
    match dt {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => Type::TEXT,
        DataType::Null => Type::TEXT,
        other => Type::from_oid(pg_types::pg_type_of(other).oid).unwrap_or(Type::TEXT),
    }
}

pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ty = wire_type(f.data_type());
            let name = crate::engine::pg_dialect::output_name(f.name()).to_owned();
            let mut info = FieldInfo::new(name, None, None, ty, format.format_for(i));
            info = info.with_type_size(pg_types::pg_type_of(f.data_type()).len);
            info
        })
        .collect()
}

/// Streams the rows of `stream` encoded for `fields`.
pub fn rows(
    stream: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send {
    stream
        .map(move |batch| {
            let rows: Vec<PgWireResult<DataRow>> = match batch {
                Ok(b) => match encode_batch(&b, &fields) {
                    Ok(rows) => rows.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                },
                Err(e) => vec![Err(crate::server::sqlstate::to_pg_error(
                    &crate::error::Error::DataFusion(e),
                ))],
            };
            futures::stream::iter(rows)
        })
        .flatten()
}

fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let mut encoder = DataRowEncoder::new(Arc::clone(fields));
    encode_rows(batch, fields, &mut encoder, DataRowEncoder::take_row)
}

/// Where encoded fields go: a data row, or a line of COPY data.
pub trait FieldSink {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()>;
}

impl FieldSink for DataRowEncoder {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        DataRowEncoder::encode_field(self, value)
    }
}

impl FieldSink for CopyEncoder {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        CopyEncoder::encode_field(self, value)
    }
}

/// Encodes each row of `batch` into `sink`, finishing each with `take`.
pub fn encode_rows<S: FieldSink, R>(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    sink: &mut S,
    take: impl Fn(&mut S) -> R,
) -> PgWireResult<Vec<R>> {
    let columns: Vec<ArrayRef> = batch.columns().to_vec();
    let options = FormatOptions::default().with_null("");
    let formatters: Vec<Option<ArrayFormatter>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            if *f.datatype() == Type::TEXT
                && !matches!(
                    c.data_type(),
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::List(_)
                        | DataType::LargeList(_)
                )
            {
                ArrayFormatter::try_new(c.as_ref(), &options).ok()
            } else {
                None
            }
        })
        .collect();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (i, column) in columns.iter().enumerate() {
            encode_value(
                sink,
                column,
                row,
                formatters[i].as_ref(),
                fields[i].format(),
            )?;
        }
        out.push(take(sink));
    }
    Ok(out)
}

fn encode_value(
    e: &mut impl FieldSink,
    a: &ArrayRef,
    row: usize,
    formatter: Option<&ArrayFormatter>,
    format: FieldFormat,
) -> PgWireResult<()> {
    // A NullArray has no validity buffer: every row is null all the same.
    if a.is_null(row) || a.data_type() == &DataType::Null {
        return e.encode_field(&None::<i32>);
    }
    if let Some(f) = formatter {
        return e.encode_field(&f.value(row).to_string());
    }
    match a.data_type() {
        DataType::Boolean => e.encode_field(&a.as_boolean().value(row)),
        DataType::Int8 => e.encode_field(&i16::from(a.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => e.encode_field(&a.as_primitive::<Int16Type>().value(row)),
        DataType::UInt8 => e.encode_field(&i16::from(a.as_primitive::<UInt8Type>().value(row))),
        DataType::Int32 => e.encode_field(&a.as_primitive::<Int32Type>().value(row)),
        DataType::UInt16 => e.encode_field(&i32::from(a.as_primitive::<UInt16Type>().value(row))),
        DataType::Int64 => e.encode_field(&a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => e.encode_field(&a.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => e.encode_field(&(a.as_primitive::<UInt64Type>().value(row) as i64)),
        DataType::Float32 => e.encode_field(&a.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => e.encode_field(&a.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => e.encode_field(&a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => e.encode_field(&a.as_string::<i64>().value(row)),
        DataType::Utf8View => e.encode_field(&a.as_string_view().value(row)),
        DataType::Binary => e.encode_field(&a.as_binary::<i32>().value(row)),
        DataType::LargeBinary => e.encode_field(&a.as_binary::<i64>().value(row)),
        DataType::Date32 => {
            let days = a.as_primitive::<Date32Type>().value(row);
            e.encode_field(&date_from_days(days)?)
        }
        DataType::Date64 => {
            let ms = a.as_primitive::<Date64Type>().value(row);
            e.encode_field(&date_from_days((ms / 86_400_000) as i32)?)
        }
        DataType::Timestamp(unit, tz) => {
            let micros = timestamp_micros(a, row, unit);
            let dt = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
                PgWireError::ApiError(format!("timestamp out of range: {micros}").into())
            })?;
            match (tz, format) {
                // PostgreSQL's text: no fraction when it is zero, and
                // no trailing zeros in it.
                (_, FieldFormat::Text) => e.encode_field(&timestamp_text(&dt, tz.is_some())),
                (Some(_), _) => e.encode_field(&dt),
                (None, _) => e.encode_field(&dt.naive_utc()),
            }
        }
        DataType::List(_) | DataType::LargeList(_) if format == FieldFormat::Text => {
            e.encode_field(&array_text(a, row)?)
        }
        other => {
            if format == FieldFormat::Binary {
                return Err(PgWireError::ApiError(
                    format!("binary format is not supported for {other}").into(),
                ));
            }
            let text = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
                .map_err(|err| PgWireError::ApiError(Box::new(err)))?
                .value(row)
                .to_string();
            e.encode_field(&text)
        }
    }
}

/// A list as PostgreSQL writes an array: `{a,b,NULL,"with space"}`.
fn array_text(a: &ArrayRef, row: usize) -> PgWireResult<String> {
    let items = match a.data_type() {
        DataType::LargeList(_) => a.as_list::<i64>().value(row),
        _ => a.as_list::<i32>().value(row),
    };
    let formatter = ArrayFormatter::try_new(items.as_ref(), &FormatOptions::default())
        .map_err(|err| PgWireError::ApiError(Box::new(err)))?;
    let mut out = String::from("{");
    for i in 0..items.len() {
        if i > 0 {
            out.push(',');
        }
        if items.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        let item = match items.data_type() {
            DataType::List(_) | DataType::LargeList(_) => array_text(&items, i)?,
            _ => formatter.value(i).to_string(),
        };
        let nested = matches!(
            items.data_type(),
            DataType::List(_) | DataType::LargeList(_)
        );
        let plain = nested
            || !item.is_empty()
                && !item.eq_ignore_ascii_case("null")
                && !item
                    .chars()
                    .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
        if plain {
            out.push_str(&item);
        } else {
            out.push('"');
            for c in item.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out.push('}');
    Ok(out)
}

/// A timestamp as PostgreSQL writes it (`DateStyle` ISO, `TimeZone` UTC):
/// `2026-07-01 01:00:00+00`, `2026-07-01 01:00:00.25+00`.
fn timestamp_text(t: &DateTime<Utc>, with_zone: bool) -> String {
    let mut text = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.timestamp_subsec_micros();
    if micros > 0 {
        let fraction = format!(".{micros:06}");
        text.push_str(fraction.trim_end_matches('0'));
    }
    if with_zone {
        text.push_str("+00");
    }
    text
}

fn date_from_days(days: i32) -> PgWireResult<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .ok_or_else(|| PgWireError::ApiError(format!("date out of range: {days}").into()))
}

fn timestamp_micros(a: &ArrayRef, row: usize, unit: &TimeUnit) -> i64 {
    use datafusion::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row) * 1_000_000,
        TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row) * 1_000,
        TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(row) / 1_000,
    }
}
