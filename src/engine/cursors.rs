//! A session's cursors: `DECLARE name CURSOR [WITH HOLD] FOR query`,
//! `FETCH [n | NEXT | FORWARD [n] | ALL] [FROM] name`, `CLOSE name | ALL`.
//!
//! A cursor holds the query's running stream and hands out its rows in
//! order, so a client can read a result of any size in pieces (psycopg's
//! named cursors, Tableau's `FETCH 2048`) while the server keeps at most
//! one batch beyond what was fetched. Cursors only move forward, as a
//! PostgreSQL `NO SCROLL` cursor. As in PostgreSQL, a cursor without
//! `WITH HOLD` needs a transaction block and closes when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::{CatalogError, Result};

pub struct Cursor {
    /// In a mutex only to make the session `Sync` (the stream is not);
    /// reached through `&mut` alone, so never locked.
    stream: Mutex<SendableRecordBatchStream>,
    schema: SchemaRef,
    /// Rows read from the stream and not fetched yet.
    pending: Option<RecordBatch>,
    /// Survives the end of the transaction (`WITH HOLD`).
    hold: bool,
}

impl Cursor {
    pub fn new(stream: SendableRecordBatchStream, hold: bool) -> Self {
        Self {
            schema: stream.schema(),
            stream: Mutex::new(stream),
            pending: None,
            hold,
        }
    }

    /// The next `count` rows (all that are left when `None`).
    async fn fetch(&mut self, count: Option<usize>) -> Result<Vec<RecordBatch>> {
        let mut want = count.unwrap_or(usize::MAX);
        let stream = self.stream.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while want > 0 {
            let batch = match self.pending.take() {
                Some(b) => b,
                None => match stream.next().await {
                    Some(b) => b?,
                    None => break,
                },
            };
            if batch.num_rows() > want {
                self.pending = Some(batch.slice(want, batch.num_rows() - want));
                out.push(batch.slice(0, want));
                want = 0;
            } else {
                want -= batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
pub struct Cursors(HashMap<String, Cursor>);

impl Cursors {
    pub fn declare(&mut self, name: &str, cursor: Cursor) -> Result<()> {
        if self.0.contains_key(name) {
            return Err(CatalogError::DuplicateCursor(name.to_owned()).into());
        }
        self.0.insert(name.to_owned(), cursor);
        Ok(())
    }

    /// The cursor's next `count` rows (or all that are left), with its
    /// columns.
    pub async fn fetch(
        &mut self,
        name: &str,
        count: Option<usize>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let cursor = self
            .0
            .get_mut(name)
            .ok_or_else(|| CatalogError::UndefinedCursor(name.to_owned()))?;
        let batches = cursor.fetch(count).await?;
        Ok((Arc::clone(&cursor.schema), batches))
    }

    /// The columns of an open cursor.
    pub fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.0.get(name).map(|c| Arc::clone(&c.schema))
    }

    pub fn close(&mut self, name: &str) -> Result<()> {
        self.0
            .remove(name)
            .map(drop)
            .ok_or_else(|| CatalogError::UndefinedCursor(name.to_owned()).into())
    }

    pub fn close_all(&mut self) {
        self.0.clear();
    }

    /// At COMMIT or ROLLBACK: closes the cursors declared without hold.
    pub fn end_transaction(&mut self) {
        self.0.retain(|_, c| c.hold);
    }
}
