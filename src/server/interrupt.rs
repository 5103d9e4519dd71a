//! Stopping a running statement: a cancel request from the client (a
//! second connection naming this one's pid and secret key, as `psql` sends
//! on Ctrl-C) or the session's `statement_timeout`. Either ends the
//! statement with SQLSTATE 57014, as in PostgreSQL.
//!
//! A statement runs in two parts: `Session::execute` (planning, and all of
//! the work of DDL such as `CREATE TABLE AS`), then the result stream,
//! which pgwire polls while it sends rows. [`Interrupt::run`] races the
//! first part against the signal and [`Interrupt::guard`] wraps the
//! second, so both stop. Stopping drops DataFusion's streams, which stops
//! their tasks; a table being written is never published (see
//! `storage::publish`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use futures::{Stream, StreamExt};
use pgwire::api::ConnectionHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};

type Signal = Pin<Box<dyn Future<Output = Error> + Send>>;

/// The connection's entry in pgwire's registry of running connections,
/// kept under our own type: pgwire races only `do_query` against a cancel
/// when it finds the handle under its type, while [`Interrupt`] also
/// covers the rows sent after it.
pub struct CancelHandle(pub Arc<ConnectionHandle>);

/// What may stop the statements of one client message.
#[derive(Clone)]
pub struct Interrupt {
    /// Fires on a cancel request; resolves `Err` when superseded by the
    /// next query's receiver, which is not a cancel.
    cancel: Option<Shared<oneshot::Receiver<()>>>,
    /// When the statement's `statement_timeout` runs out.
    deadline: Option<Instant>,
}

impl Interrupt {
    pub fn new(cancel: Option<oneshot::Receiver<()>>) -> Self {
        Self {
            cancel: cancel.map(FutureExt::shared),
            deadline: None,
        }
    }

    /// The interrupt of one statement starting now, with the session's
    /// `statement_timeout` as it is when the statement starts (a `SET`
    /// earlier in the same message counts).
    pub fn statement(&self, statement_timeout: Option<&str>) -> Self {
        Self {
            cancel: self.cancel.clone(),
            deadline: statement_timeout
                .and_then(parse_timeout)
                .map(|t| Instant::now() + t),
        }
    }

    fn signal(&self) -> Signal {
        let cancel = self.cancel.clone();
        let deadline = self.deadline;
        Box::pin(async move {
            let cancelled = async {
                let fired = match cancel {
                    Some(c) => c.await.is_ok(),
                    None => false,
                };
                if !fired {
                    std::future::pending::<()>().await;
                }
            };
            let timed_out = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancelled => Error::QueryCanceled("canceling statement due to user request".into()),
                () = timed_out => Error::QueryCanceled("canceling statement due to statement timeout".into()),
            }
        })
    }

    /// Runs `work` unless the signal comes first; then returns its error
    /// (and drops `work`, stopping it).
    pub async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let signal = self.signal();
        tokio::select! {
            biased;
            e = signal => Err(e),
            r = work => r,
        }
    }

    /// The stream, ending with the signal's error if it comes before the
    /// stream ends.
    pub fn guard(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(Guarded {
            schema: stream.schema(),
            inner: Some(stream),
            signal: self.signal(),
        })
    }
}

struct Guarded {
    schema: SchemaRef,
    inner: Option<SendableRecordBatchStream>,
    signal: Signal,
}

impl Stream for Guarded {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.poll_next_unpin(cx);
        if matches!(next, Poll::Ready(None)) {
            return next;
        }
        if let Poll::Ready(e) = self.signal.as_mut().poll(cx) {
            self.inner = None;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(e)))));
        }
        next
    }
}

impl RecordBatchStream for Guarded {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// `statement_timeout` as PostgreSQL reads it: milliseconds, or a number
/// with a unit (`us`, `ms`, `s`, `min`, `h`, `d`); 0 means none.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let v = value.trim().trim_matches('\'');
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms = number
        * match unit.trim() {
            "" | "ms" => 1.0,
            "us" => 0.001,
            "s" => 1_000.0,
            "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
    (ms > 0.0).then(|| Duration::from_micros((ms * 1_000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_postgres_does() {
        assert_eq!(parse_timeout("0"), None);
        assert_eq!(parse_timeout("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("'2s'"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_timeout("soon"), None);
    }
}
