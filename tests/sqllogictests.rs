//! Runs every `tests/slt/*.slt` file against a fresh in-memory engine (one
//! engine per file), through the same `Session` the server uses.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use profiledb::engine::{Engine, Outcome, Session};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct Db {
    _engine: Arc<Engine>,
    session: Session,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DbError(String);

#[async_trait::async_trait]
impl AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let outcomes = self
            .session
            .execute_sql(sql)
            .await
            .map_err(|e| DbError(e.to_string()))?;
        match outcomes.into_iter().last() {
            Some(Outcome::Rows { schema, stream, .. }) => {
                let batches: Vec<RecordBatch> = stream
                    .try_collect()
                    .await
                    .map_err(|e| DbError(e.to_string()))?;
                let mut rows = Vec::new();
                let options = FormatOptions::default().with_null("NULL");
                for b in &batches {
                    let formatters = b
                        .columns()
                        .iter()
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| DbError(e.to_string()))?;
                    for r in 0..b.num_rows() {
                        rows.push(
                            formatters
                                .iter()
                                .zip(b.columns())
                                .map(|(f, c)| {
                                    let s = f.value(r).to_string();
                                    if s.is_empty() && !c.is_null(r) {
                                        "(empty)".to_owned()
                                    } else {
                                        s
                                    }
                                })
                                .collect(),
                        );
                    }
                }
                Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; schema.fields().len()],
                    rows,
                })
            }
            Some(Outcome::Command { rows, .. }) => {
                Ok(DBOutput::StatementComplete(rows.unwrap_or(0) as u64))
            }
            Some(Outcome::CopyOut { .. } | Outcome::CopyIn(_)) => Err(DbError(
                "COPY needs a client connection (the wire server)".to_owned(),
            )),
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "profiledb"
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let result = runtime.block_on(async {
            let engine = Engine::open("memory://").await.map_err(|e| e.to_string())?;
            let mut runner = sqllogictest::Runner::new(|| {
                let engine = Arc::clone(&engine);
                async move {
                    Ok::<_, DbError>(Db {
                        session: engine.session(),
                        _engine: engine,
                    })
                }
            });
            runner.with_column_validator(|_, _| true);
            runner
                .run_file_async(&file)
                .await
                .map_err(|e| e.display(true).to_string())
        });
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok      {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED  {name}\n{e}");
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
