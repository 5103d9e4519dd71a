//! The connection's entry in `pg_stat_activity` (`catalog::backends`):
//! registered after authentication, marked active while a statement runs
//! and until its rows are sent, and the signals `pg_cancel_backend` and
//! `pg_terminate_backend` reach it by.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use pgwire::api::{ClientInfo, ConnectionHandle};
use tokio::sync::Notify;

use crate::catalog::backends::{Busy, Registration, Signals};
use crate::engine::Session;

/// How another connection stops this one: the same handle a cancel
/// request fires, and the notice that makes the server drop the socket
/// (see `server::serve`).
pub struct ConnectionSignals {
    pub cancel: Arc<ConnectionHandle>,
    pub terminate: Arc<Notify>,
}

impl Signals for ConnectionSignals {
    fn cancel(&self) {
        let handle = Arc::clone(&self.cancel);
        tokio::spawn(async move { handle.cancel().await });
    }

    fn terminate(&self) {
        self.cancel();
        self.terminate.notify_one();
    }
}

/// Kept in the client's session extensions; dropped with the connection,
/// which takes it out of `pg_stat_activity`.
pub struct Registered(pub Registration);

/// Marks `query` as running on this connection, if it is registered.
pub fn begin(client: &impl ClientInfo, query: &str, in_transaction: bool) -> Option<Arc<Busy>> {
    let registered = client.session_extensions().get::<Registered>()?;
    Some(registered.0.backend().begin(query, in_transaction))
}

/// Records what the statement left the session in (a transaction block,
/// its `application_name`).
pub fn executed(busy: Option<&Busy>, session: &Session) {
    if let Some(b) = busy {
        b.executed(
            session.in_transaction(),
            session.setting("application_name"),
        );
    }
}

/// The stream, keeping the connection active until it is sent.
pub fn hold(
    stream: SendableRecordBatchStream,
    busy: Option<Arc<Busy>>,
) -> SendableRecordBatchStream {
    match busy {
        None => stream,
        Some(busy) => Box::pin(Holding {
            schema: stream.schema(),
            inner: stream,
            _busy: busy,
        }),
    }
}

struct Holding {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    _busy: Arc<Busy>,
}

impl Stream for Holding {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for Holding {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
