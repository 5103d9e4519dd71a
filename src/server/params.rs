//! Bind parameters → DataFusion values. A parameter's type is the one the
//! client declared in Parse, else the one DataFusion inferred for `$n`, else
//! text. Text-format values are parsed by casting (so `'42'` binds to a
//! bigint column); binary values are decoded by their declared type.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::{PgWireError, PgWireResult};

use super::sqlstate::{INVALID_TEXT_REPRESENTATION, error_info};

/// The Arrow type a client-declared parameter type stands for.
pub fn arrow_type(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::OID => DataType::UInt32,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::JSON
        | Type::JSONB
        | Type::UUID => DataType::Utf8,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::NUMERIC => DataType::Float64,
        Type::BYTEA => DataType::Binary,
        _ => return None,
    })
}

/// Decodes every parameter of `portal`; `types[i]` is the best known type.
pub fn decode<S: Clone>(
    portal: &Portal<S>,
    types: &[Type],
    inferred: &[Option<DataType>],
) -> PgWireResult<ParamValues> {
    let mut values = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let ty = types.get(i).cloned().unwrap_or(Type::UNKNOWN);
        let target = inferred
            .get(i)
            .cloned()
            .flatten()
            .or_else(|| arrow_type(&ty))
            .unwrap_or(DataType::Utf8);
        let value = if portal.parameter_format.is_binary(i) {
            decode_binary(portal, i, &ty)?
        } else {
            ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT)?)
        };
        let value = if value.data_type() == target {
            value
        } else {
            value.cast_to(&target).map_err(|e| {
                PgWireError::UserError(Box::new(error_info(
                    INVALID_TEXT_REPRESENTATION,
                    format!("parameter ${}: invalid input for type {target}: {e}", i + 1),
                )))
            })?
        };
        values.push(value);
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

fn decode_binary<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<ScalarValue> {
    Ok(match *ty {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, ty)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, ty)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, ty)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, ty)?),
        Type::OID => ScalarValue::UInt32(portal.parameter::<u32>(i, ty)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, ty)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, ty)?),
        Type::DATE => ScalarValue::Date32(portal.parameter::<NaiveDate>(i, ty)?.map(|d| {
            d.signed_duration_since(DateTime::UNIX_EPOCH.date_naive())
                .num_days() as i32
        })),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<NaiveDateTime>(i, ty)?
                .map(|t| t.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<DateTime<chrono::FixedOffset>>(i, ty)?
                .map(|t| t.timestamp_micros()),
            Some("UTC".into()),
        ),
        Type::BYTEA => ScalarValue::Binary(portal.parameter::<Vec<u8>>(i, ty)?),
        _ => ScalarValue::Utf8(portal.parameter::<String>(i, ty)?),
    })
}
