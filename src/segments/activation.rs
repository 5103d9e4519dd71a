//! Activation: sending segments to the tools that message people.
//!
//! Activations are declared in the models' schema files (`*.yml`, beside
//! dbt's `models:`):
//!
//! ```yaml
//! activations:
//!   - name: big_spenders_crm        # default: the segment's name
//!     segment: big_spenders
//!     export: {format: parquet, path: exports/big_spenders}   # or csv
//!     webhook:
//!       url: https://crm.example.com/hooks/segments
//!       headers: {Authorization: "Bearer ${CRM_TOKEN}"}      # ${VAR}: from the environment
//!       batch_size: 500
//!       max_attempts: 5
//!       retry_base_ms: 500
//! ```
//!
//! After each run's segment refresh, every activation sends what changed
//! since its last delivery (its cursor, the time of the last event it
//! sent, in `history/activations/<name>.json`):
//!
//! - **Export**: `<path>/<time>/members.<ext>` (the current members),
//!   `changes.<ext>` (entered/exited since the cursor), then
//!   `manifest.json` last: a folder with a manifest is complete.
//! - **Webhook**: the changes as JSON batches, POSTed with an
//!   `Idempotency-Key` header (`<activation>:<from>:<to>:<batch>`, the same
//!   on every retry). A batch that fails (a connection error or a non-2xx
//!   answer) is retried with exponential backoff; after `max_attempts` it
//!   is written to the table `activation_dead_letters` with its payload
//!   and last error, and the next batch goes on. Delivery is at least
//!   once: the cursor moves only after every batch was delivered or
//!   dead-lettered, so a crash re-sends (with the same keys).
//!
//! Each delivery is recorded in `activation_runs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::{
    ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::append;
use crate::engine::Engine;
use crate::error::{Error, Result};

pub const DEAD_LETTERS: &str = "activation_dead_letters";
pub const RUNS: &str = "activation_runs";
const CURSORS: &str = "history/activations";

/// One declared activation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    #[serde(default)]
    pub name: Option<String>,
    pub segment: String,
    #[serde(default)]
    pub export: Option<Export>,
    #[serde(default)]
    pub webhook: Option<Webhook>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    #[serde(default = "default_format")]
    pub format: String,
    /// A folder under the storage root.
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
}

fn default_format() -> String {
    "parquet".into()
}
fn default_batch_size() -> usize {
    500
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_base_ms() -> u64 {
    500
}

impl Activation {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.segment)
    }
}

#[derive(Debug, Deserialize)]
struct ActivationsFile {
    #[serde(default)]
    activations: Vec<Activation>,
}

/// The activations declared in a models folder's schema files.
pub fn load_dir(dir: &Path) -> Result<Vec<Activation>> {
    let mut out: Vec<Activation> = Vec::new();
    for path in crate::models::files_with_extension(dir, &["yml", "yaml"])? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let file: ActivationsFile = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        for a in file.activations {
            if let Some(e) = &a.export
                && !matches!(e.format.as_str(), "parquet" | "csv")
            {
                return Err(Error::Config(format!(
                    "{}: activation {}: format '{}' is not parquet or csv",
                    path.display(),
                    a.name(),
                    e.format
                )));
            }
            if out.iter().any(|b| b.name() == a.name()) {
                return Err(Error::Config(format!(
                    "{}: two activations are named {}",
                    path.display(),
                    a.name()
                )));
            }
            out.push(a);
        }
    }
    Ok(out)
}

/// What one activation did.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub activation: String,
    pub segment: String,
    pub members: u64,
    pub changes: u64,
    /// The export folder written (relative to the storage root).
    pub exported_to: Option<String>,
    pub batches_delivered: u64,
    pub batches_dead_lettered: u64,
    /// Why it did not run (its cursor stays).
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The time of the last event delivered (µs since the epoch).
    last_event_at: Option<i64>,
}

/// Delivers every activation's changes, as of `now`.
pub async fn deliver_all(
    engine: &Arc<Engine>,
    activations: &[Activation],
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for activation in activations {
        let delivery = match deliver(engine, activation, now).await {
            Ok(d) => d,
            Err(e) => Delivery {
                activation: activation.name().to_owned(),
                segment: activation.segment.clone(),
                error: Some(e.to_string()),
                ..Delivery::default()
            },
        };
        out.push(delivery);
    }
    if !out.is_empty()
        && let Err(e) = record_runs(engine, &out, now).await
    {
        tracing::warn!(error = %e, "could not record activation runs");
    }
    out
}

async fn deliver(engine: &Arc<Engine>, a: &Activation, now: DateTime<Utc>) -> Result<Delivery> {
    let name = a.name().to_owned();
    let storage = engine.storage();
    let cursor_path = format!("{CURSORS}/{name}.json");
    let cursor: Cursor = storage.get_json(&cursor_path).await?.unwrap_or_default();
    let segment = a.segment.replace('\'', "''");
    let snapshot = engine.catalog().snapshot();
    if snapshot.relation("segments", &a.segment).is_none() {
        return Err(Error::Config(format!(
            "activation {name}: there is no segment {}",
            a.segment
        )));
    }
    let members = engine
        .query(&format!(
            "SELECT profile_id, since FROM public.segment_membership \
             WHERE segment = '{segment}' ORDER BY profile_id"
        ))
        .await?;
    // Only the events after the cursor are read (not the whole history).
    let after = cursor
        .last_event_at
        .map(|t| format!(" AND CAST(at AS BIGINT) > {t}"))
        .unwrap_or_default();
    let changes = engine
        .query(&format!(
            "SELECT profile_id, event, at FROM public.segment_events \
             WHERE segment = '{segment}'{after} ORDER BY at, event, profile_id"
        ))
        .await?;
    let last_event_at = changes
        .iter()
        .filter_map(|b| {
            let at = b.column(2).as_primitive::<TimestampMicrosecondType>();
            (0..at.len()).map(|i| at.value(i)).max()
        })
        .max()
        .or(cursor.last_event_at);
    let mut delivery = Delivery {
        activation: name.clone(),
        segment: a.segment.clone(),
        members: members.iter().map(|b| b.num_rows() as u64).sum(),
        changes: changes.iter().map(|b| b.num_rows() as u64).sum(),
        ..Delivery::default()
    };
    if let Some(export) = &a.export {
        let folder = format!(
            "{}/{}",
            export.path.trim_end_matches('/'),
            now.format("%Y%m%dT%H%M%S%.6fZ")
        );
        let ext = export.format.as_str();
        storage
            .put_bytes(&format!("{folder}/members.{ext}"), encode(&members, ext)?)
            .await?;
        storage
            .put_bytes(&format!("{folder}/changes.{ext}"), encode(&changes, ext)?)
            .await?;
        let manifest = serde_json::json!({
            "activation": name,
            "segment": a.segment,
            "exported_at": now.to_rfc3339_opts(SecondsFormat::Micros, true),
            "members": delivery.members,
            "changes": delivery.changes,
            "changes_after": cursor.last_event_at.map(time_text),
            "format": ext,
        });
        storage
            .put_bytes(
                &format!("{folder}/manifest.json"),
                Bytes::from(manifest.to_string()),
            )
            .await?;
        delivery.exported_to = Some(folder);
    }
    if let Some(hook) = &a.webhook {
        let rows = change_rows(&changes);
        let from = cursor.last_event_at.unwrap_or(0);
        let to = last_event_at.unwrap_or(0);
        let batches: Vec<&[ChangeRow]> = rows.chunks(hook.batch_size.max(1)).collect();
        let total = batches.len();
        for (i, batch) in batches.into_iter().enumerate() {
            let key = format!("{name}:{from}:{to}:{}", i + 1);
            let payload = serde_json::json!({
                "activation": name,
                "segment": a.segment,
                "idempotency_key": key,
                "batch": i + 1,
                "batches": total,
                "events": batch.iter().map(|r| serde_json::json!({
                    "profile_id": r.profile_id,
                    "event": r.event,
                    "at": time_text(r.at),
                })).collect::<Vec<_>>(),
            })
            .to_string();
            match post(hook, &key, &payload).await {
                Ok(()) => delivery.batches_delivered += 1,
                Err((attempts, error)) => {
                    dead_letter(
                        engine, &name, &a.segment, &key, &payload, &error, attempts, now,
                    )
                    .await?;
                    delivery.batches_dead_lettered += 1;
                }
            }
        }
    }
    storage
        .put_json(&cursor_path, &Cursor { last_event_at })
        .await?;
    Ok(delivery)
}

struct ChangeRow {
    profile_id: String,
    event: String,
    at: i64,
}

fn change_rows(changes: &[RecordBatch]) -> Vec<ChangeRow> {
    let mut out = Vec::new();
    for b in changes {
        let (p, e) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        let at = b.column(2).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            out.push(ChangeRow {
                profile_id: p.value(i).to_owned(),
                event: e.value(i).to_owned(),
                at: at.value(i),
            });
        }
    }
    out
}

fn time_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Rows as a Parquet or CSV file.
fn encode(batches: &[RecordBatch], format: &str) -> Result<Bytes> {
    let mut out = Vec::new();
    if let Some(first) = batches.first() {
        if format == "csv" {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                writer.write(b)?;
            }
        } else {
            let mut writer = ArrowWriter::try_new(&mut out, first.schema(), None)?;
            for b in batches {
                writer.write(b)?;
            }
            writer.close()?;
        }
    }
    Ok(Bytes::from(out))
}

/// Expands `${VAR}` from the environment (secrets stay out of files).
fn expand(value: &str) -> String {
    expand_with(value, |var| std::env::var(var).ok())
}

fn expand_with(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let var = &rest[start + 2..start + 2 + end];
                out.push_str(&lookup(var).unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// POSTs one batch, retrying with exponential backoff; on giving up, how
/// many attempts were made and the last error.
async fn post(hook: &Webhook, key: &str, payload: &str) -> std::result::Result<(), (u32, String)> {
    let attempts = hook.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let (url, key, body) = (hook.url.clone(), key.to_owned(), payload.to_owned());
        let headers: Vec<(String, String)> = hook
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect();
        let sent = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into();
            let mut request = agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", &key);
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            request.send(body).map(|r| r.status().as_u16())
        })
        .await;
        match sent {
            Ok(Ok(status)) if (200..300).contains(&status) => return Ok(()),
            Ok(Ok(status)) => last = format!("HTTP {status}"),
            Ok(Err(e)) => last = e.to_string(),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(url = %hook.url, attempt, error = %last, "webhook delivery failed");
        if attempt < attempts {
            let wait = hook
                .retry_base_ms
                .saturating_mul(1 << (attempt - 1).min(16));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    Err((attempts, last))
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn times(n: usize, at: DateTime<Utc>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n]).with_timezone("UTC"))
}

#[allow(clippy::too_many_arguments)]
async fn dead_letter(
    engine: &Arc<Engine>,
    activation: &str,
    segment: &str,
    key: &str,
    payload: &str,
    error: &str,
    attempts: u32,
    now: DateTime<Utc>,
) -> Result<()> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("activation", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("idempotency_key", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("failed_at", time_type(), false),
    ]));
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(activation),
            text(segment),
            text(key),
            text(payload),
            text(error),
            Arc::new(Int64Array::from(vec![i64::from(attempts)])),
            times(1, now),
        ],
    )?;
    append(engine, DEAD_LETTERS, batch).await
}

async fn record_runs(engine: &Arc<Engine>, runs: &[Delivery], now: DateTime<Utc>) -> Result<()> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("activation", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("ran_at", time_type(), false),
        Field::new("members", DataType::Int64, false),
        Field::new("changes", DataType::Int64, false),
        Field::new("exported_to", DataType::Utf8, true),
        Field::new("batches_delivered", DataType::Int64, false),
        Field::new("batches_dead_lettered", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
    ]));
    let ints = |f: &dyn Fn(&Delivery) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            runs.iter().map(|r| f(r) as i64),
        ))
    };
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| &r.activation),
            )),
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| &r.segment),
            )),
            times(runs.len(), now),
            ints(&|r| r.members),
            ints(&|r| r.changes),
            Arc::new(StringArray::from_iter(
                runs.iter().map(|r| r.exported_to.as_deref()),
            )),
            ints(&|r| r.batches_delivered),
            ints(&|r| r.batches_dead_lettered),
            Arc::new(StringArray::from_iter(
                runs.iter().map(|r| r.error.as_deref()),
            )),
        ],
    )?;
    append(engine, RUNS, batch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_take_secrets_from_the_environment() {
        let env = |v: &str| (v == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(expand_with("Bearer ${TOKEN}!", env), "Bearer s3cret!");
        assert_eq!(expand_with("no ${unclosed", env), "no ${unclosed");
        assert_eq!(expand_with("${NOT_SET}x", env), "x");
    }
}
