//! The COPY sub-protocol. `COPY … TO STDOUT` streams the rows as CopyData
//! messages, one per row, in PostgreSQL's text or CSV format (the same
//! value encoding as result rows, see `encode`); `COPY … FROM STDIN`
//! collects the client's CopyData until CopyDone and hands it to
//! [`crate::engine::Session::copy_in`], which checks every row before it
//! writes any.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::Schema;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::handler::Connection;
use super::{encode, sqlstate};
use crate::engine::copy::{CopyFormat, CopyIn};
use crate::error::Error;

/// A COPY FROM STDIN in progress: where the rows go, and the data so far.
pub struct Incoming {
    pub target: CopyIn,
    pub data: Vec<u8>,
}

/// The response that starts a COPY TO STDOUT.
pub fn copy_out(
    schema: &Schema,
    stream: SendableRecordBatchStream,
    format: &CopyFormat,
) -> CopyResponse {
    let fields = Arc::new(encode::fields(schema, &Format::UnifiedText));
    let columns = fields.len();
    let mut encoder = if format.csv {
        CopyEncoder::new_csv(
            Arc::clone(&fields),
            CopyCsvOptions {
                delimiter: format.delimiter.to_string().into(),
                quote: format.quote.to_string().into(),
                escape: format.quote.to_string().into(),
                null_string: format.null.clone().into(),
                force_quote: Vec::new(),
            },
        )
    } else {
        CopyEncoder::new_text(
            Arc::clone(&fields),
            CopyTextOptions {
                delimiter: format.delimiter.to_string().into(),
                null_string: format.null.clone().into(),
            },
        )
    };
    // The header goes in front of the first row (each message counts as a
    // row in the command tag).
    let mut header = format.header.then(|| {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| csv_quoted(f.name(), format))
            .collect();
        format!("{}\n", names.join(&format.delimiter.to_string()))
    });
    let data = stream
        .map(move |batch| {
            let encoded = match batch {
                Ok(b) => encode::encode_rows(&b, &fields, &mut encoder, CopyEncoder::take_copy),
                Err(e) => Err(sqlstate::to_pg_error(&Error::DataFusion(e))),
            };
            let rows: Vec<PgWireResult<CopyData>> = match encoded {
                Ok(rows) => rows
                    .into_iter()
                    .map(|row| {
                        Ok(match header.take() {
                            Some(h) => {
                                let mut joined = h.into_bytes();
                                joined.extend_from_slice(&row.data);
                                CopyData::new(Bytes::from(joined))
                            }
                            None => row,
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(rows)
        })
        .flatten();
    CopyResponse::new(0, columns, data)
}

fn csv_quoted(name: &str, format: &CopyFormat) -> String {
    let q = format.quote;
    if name.contains([format.delimiter, q, '\n', '\r']) {
        format!("{q}{}{q}", name.replace(q, &format!("{q}{q}")))
    } else {
        name.to_owned()
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(incoming) = self.incoming().as_mut() {
            incoming.data.extend_from_slice(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(incoming) = self.incoming().take() else {
            return Ok(());
        };
        let mut session = self.session().lock().await;
        let rows = session
            .copy_in(&incoming.target, &incoming.data)
            .await
            .map_err(|e| sqlstate::to_pg_error(&e))?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows as usize).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.incoming().take();
        sqlstate::to_pg_error(&Error::Copy(format!(
            "COPY from stdin failed: {}; nothing was written",
            fail.message
        )))
    }
}
