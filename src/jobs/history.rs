//! Run history: each run of models (`profiledb run`, a scheduled job, a
//! `CALL system.run(…)`) is written once, when it ends, as one JSON file
//! under `history/runs/` (a put of a whole object: readers see it whole
//! or not at all). `system.runs` reads them all; a process keeps the files
//! it has parsed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::run::{BuildMode, ModelStatus, RunReport};
use crate::storage::{Storage, layout};

/// One run of models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// `cli`, `schedule`, `retry` or `manual` (a CALL).
    pub trigger: String,
    /// Who asked (the database user of a CALL, the OS user of the CLI).
    pub triggered_by: Option<String>,
    /// The `--select` expression, if any.
    pub selection: Option<String>,
    /// For a scheduled run: the job (model) and its attempt (0 first).
    pub job: Option<String>,
    pub attempt: u32,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    pub models: Vec<ModelRun>,
}

/// One model's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRun {
    pub model: String,
    /// `success`, `failed` or `skipped`.
    pub status: String,
    /// `full`, `incremental`, `unchanged` or `view`.
    pub mode: String,
    pub rows: u64,
    pub new_rows: u64,
    pub deleted_rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub error: Option<String>,
    pub note: Option<String>,
}

impl RunRecord {
    pub fn new(
        trigger: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        report: &RunReport,
    ) -> Self {
        Self {
            run_id: format!(
                "{}-{:08x}",
                started_at.format("%Y%m%dT%H%M%S"),
                rand::random::<u32>()
            ),
            trigger: trigger.to_owned(),
            triggered_by: None,
            selection: None,
            job: None,
            attempt: 0,
            started_at,
            finished_at,
            models: report
                .models
                .iter()
                .map(|m| ModelRun {
                    model: m.model.clone(),
                    status: match m.status {
                        ModelStatus::Built => "success",
                        ModelStatus::Failed => "failed",
                        ModelStatus::Skipped => "skipped",
                    }
                    .to_owned(),
                    mode: match m.mode {
                        BuildMode::Full => "full",
                        BuildMode::Incremental => "incremental",
                        BuildMode::Unchanged => "unchanged",
                        BuildMode::Changes => "changes",
                        BuildMode::View => "view",
                    }
                    .to_owned(),
                    rows: m.rows,
                    new_rows: m.new_rows,
                    deleted_rows: m.deleted_rows,
                    bytes: m.bytes,
                    seconds: m.seconds,
                    error: m.error.clone(),
                    note: m.note.clone(),
                })
                .collect(),
        }
    }

    /// Whether every model of the run was built.
    pub fn succeeded(&self) -> bool {
        self.models.iter().all(|m| m.status == "success")
    }

    fn path(&self) -> String {
        format!("{}/{}.json", layout::HISTORY_RUNS, self.run_id)
    }
}

/// The run history of a storage root.
#[derive(Debug, Default)]
pub struct History {
    parsed: Mutex<BTreeMap<String, RunRecord>>,
}

impl History {
    /// Writes a finished run.
    pub async fn write(&self, storage: &Storage, record: &RunRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::Config(format!("run record: {e}")))?;
        let path = record.path();
        storage.put_bytes(&path, Bytes::from(json)).await?;
        self.parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, record.clone());
        Ok(())
    }

    /// Every run, oldest first (by start, then id). A file that cannot
    /// be parsed is skipped with a warning.
    pub async fn all(&self, storage: &Storage) -> Result<Vec<RunRecord>> {
        let listed = storage.list(&format!("{}/", layout::HISTORY_RUNS)).await?;
        let known: Vec<String> = {
            let parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
            listed
                .iter()
                .filter(|(p, _)| p.ends_with(".json") && !parsed.contains_key(p))
                .map(|(p, _)| p.clone())
                .collect()
        };
        for path in known {
            match storage.get_json::<RunRecord>(&path).await {
                Ok(Some(record)) => {
                    self.parsed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path, record);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%path, error = %e, "skipping an unreadable run record"),
            }
        }
        let mut out: Vec<RunRecord> = self
            .parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(out)
    }
}

/// Times as RFC 3339 text (chrono's serde feature would rebuild Arrow).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
