//! Building models: each selected model, in dependency order, is planned
//! against the current catalog, executed, and published atomically. A model
//! that fails keeps its previous version; the models that read it are
//! skipped, independent ones still build. Every model yields metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::error::DataFusionError;
use datafusion::sql::parser::Statement as DFStatement;

use super::dag::{self, Node};
use crate::catalog::DEFAULT_SCHEMA;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::publish::publish_table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    Built,
    Failed,
    /// Not built because a model it reads failed.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct ModelMetrics {
    pub model: String,
    pub status: ModelStatus,
    pub rows: u64,
    pub bytes: u64,
    pub files: usize,
    pub seconds: f64,
    pub error: Option<String>,
}

/// Progress, for a display.
pub enum Event<'a> {
    Started {
        model: &'a str,
        index: usize,
        total: usize,
    },
    Finished(&'a ModelMetrics),
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    pub models: Vec<ModelMetrics>,
}

impl RunReport {
    pub fn failed(&self) -> Vec<&ModelMetrics> {
        self.models
            .iter()
            .filter(|m| m.status != ModelStatus::Built)
            .collect()
    }
}

/// Builds the selected models (all when `selection` is None).
pub async fn run(
    engine: &Arc<Engine>,
    nodes: &BTreeMap<String, Node>,
    selection: Option<&BTreeSet<String>>,
    mut on_event: impl FnMut(Event),
) -> Result<RunReport> {
    engine.catalog().refresh_sources().await?;
    let order: Vec<String> = dag::order(nodes)?
        .into_iter()
        .filter(|m| selection.is_none_or(|s| s.contains(m)))
        .collect();
    let total = order.len();
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let mut report = RunReport { models: Vec::new() };
    for (index, name) in order.iter().enumerate() {
        let node = &nodes[name];
        on_event(Event::Started {
            model: name,
            index,
            total,
        });
        let metrics = if let Some(failed) = node.depends_on.iter().find(|d| broken.contains(*d)) {
            broken.insert(name.clone());
            ModelMetrics {
                model: name.clone(),
                status: ModelStatus::Skipped,
                rows: 0,
                bytes: 0,
                files: 0,
                seconds: 0.0,
                error: Some(format!("skipped: {failed} failed")),
            }
        } else {
            let started = Instant::now();
            match build_one(engine, node).await {
                Ok((rows, bytes, files)) => ModelMetrics {
                    model: name.clone(),
                    status: ModelStatus::Built,
                    rows,
                    bytes,
                    files,
                    seconds: started.elapsed().as_secs_f64(),
                    error: None,
                },
                Err(e) => {
                    broken.insert(name.clone());
                    ModelMetrics {
                        model: name.clone(),
                        status: ModelStatus::Failed,
                        rows: 0,
                        bytes: 0,
                        files: 0,
                        seconds: started.elapsed().as_secs_f64(),
                        error: Some(e.to_string()),
                    }
                }
            }
        };
        on_event(Event::Finished(&metrics));
        report.models.push(metrics);
    }
    Ok(report)
}

async fn build_one(engine: &Arc<Engine>, node: &Node) -> Result<(u64, u64, usize)> {
    let model_err = |e: DataFusionError| Error::Model {
        model: node.model.name.clone(),
        path: node.model.path.clone(),
        message: describe(&e, &node.model.sql),
    };
    let DFStatement::Statement(stmt) = &node.statement else {
        return Err(Error::Model {
            model: node.model.name.clone(),
            path: node.model.path.clone(),
            message: "not a query".into(),
        });
    };
    let session = engine.session();
    let plan = session.plan(stmt).await.map_err(|e| match e {
        Error::DataFusion(d) => model_err(d),
        other => other,
    })?;
    let stream = session
        .context()
        .execute_logical_plan(plan)
        .await
        .map_err(model_err)?
        .execute_stream()
        .await
        .map_err(model_err)?;
    let pointer = publish_table(
        engine.storage(),
        DEFAULT_SCHEMA,
        &node.model.name,
        stream,
        Some(format!("model {} ({})", node.model.name, node.model.path)),
    )
    .await
    .map_err(|e| match e {
        Error::DataFusion(d) => model_err(d),
        other => Error::Model {
            model: node.model.name.clone(),
            path: node.model.path.clone(),
            message: other.to_string(),
        },
    })?;
    engine.catalog().refresh().await?;
    Ok((pointer.rows, pointer.bytes, pointer.files.len()))
}

/// The error, with the SQL position and line when DataFusion knows it.
fn describe(e: &DataFusionError, sql: &str) -> String {
    let base = e.to_string();
    let Some(span) = e.diagnostic().and_then(|d| d.span) else {
        return base;
    };
    let line_no = span.start.line as usize;
    let line = sql
        .lines()
        .nth(line_no.saturating_sub(1))
        .unwrap_or("")
        .trim_end();
    format!(
        "{base}\n  at line {line_no}, column {}:\n    {line}\n    {}^",
        span.start.column,
        " ".repeat((span.start.column as usize).saturating_sub(1))
    )
}
