//! Scheduled jobs: `profiledb serve` runs each model that has a
//! `schedule` (see `models::schedule`) when it is due, with the models it
//! reads (`+model`), so what it publishes reflects the newest raw data.
//!
//! - **One run at a time.** Scheduled runs, and runs asked for with
//!   `CALL system.run('…')`, take one lock: no model is ever built by two
//!   runs at once. A job that comes due while another runs waits; a job
//!   whose run outlasts its interval is next due at its first time after
//!   the run (missed times are not queued up).
//! - **Retries with backoff.** A failed run is retried `retries` times
//!   (model config, default 2), after 30 s, 60 s, 120 s, … (capped at an
//!   hour), then the job waits for its next scheduled time. A failed model
//!   keeps its last good version (see `models::run`).
//! - **An injectable clock** ([`clock`]): tests move a [`clock::TestClock`]
//!   and wait for [`Jobs::settled`], never sleeping.
//! - **Visible in SQL** ([`Operations`]): `system.models`, `system.runs`
//!   and `system.jobs`. Each run is also written to the run history
//!   ([`history`]), as `profiledb run` does.
//!
//! The models are read again from their folder at each run, so an edited
//! schedule or model applies from the next run on.

pub mod clock;
pub mod history;
mod tables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{Notify, watch};

use crate::catalog::system::Operations;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models;
use crate::models::dag::{self, Node};
use crate::models::run::{self as model_run, RunOptions};
use crate::models::schedule::Schedule;
use crate::segments::activation;
use clock::Clock;
use history::{History, RunRecord};

/// The first retry's wait; each further retry waits twice as long.
pub const RETRY_BASE: chrono::Duration = chrono::Duration::seconds(30);
const RETRY_CAP: chrono::Duration = chrono::Duration::hours(1);

/// The scheduler and runner of a server's models.
#[derive(Debug)]
pub struct Jobs {
    engine: Arc<Engine>,
    /// The models' folder (None: the shipped models).
    models: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held by the run in progress.
    run_lock: tokio::sync::Mutex<()>,
    /// Wakes the scheduler (the models changed, or it should stop).
    wake: Notify,
    /// The clock time at which the scheduler last found nothing due.
    idle: watch::Sender<Option<DateTime<Utc>>>,
    history: History,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    jobs: BTreeMap<String, Job>,
}

/// A scheduled model.
#[derive(Debug, Clone)]
struct Job {
    schedule: Schedule,
    retries: u32,
    next_at: DateTime<Utc>,
    /// A failed run's retry time; it comes before `next_at`.
    retry_at: Option<DateTime<Utc>>,
    /// Failed runs in a row (0 after a success).
    attempt: u32,
    running: bool,
    last_run_at: Option<DateTime<Utc>>,
    last_status: Option<String>,
}

impl Job {
    fn due_at(&self) -> DateTime<Utc> {
        self.retry_at.unwrap_or(self.next_at)
    }
}

impl Jobs {
    /// Loads the models and registers the `system` schema; the schedule
    /// starts with [`Self::run_schedule`].
    pub async fn new(
        engine: Arc<Engine>,
        models: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>> {
        let jobs = Arc::new(Self {
            engine,
            models,
            clock,
            state: Mutex::new(State::default()),
            run_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            idle: watch::Sender::new(None),
            history: History::default(),
        });
        jobs.reload()?;
        let operations: Arc<dyn Operations> = Arc::clone(&jobs) as Arc<dyn Operations>;
        jobs.engine.catalog().set_operations(operations).await?;
        Ok(jobs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the models again, and adds, changes or drops jobs to match
    /// their schedules.
    fn reload(&self) -> Result<BTreeMap<String, Node>> {
        let loaded = match &self.models {
            Some(dir) => models::load_dir(dir)?,
            None => models::default_models(),
        };
        let nodes = dag::build(loaded)?;
        let now = self.clock.now();
        let mut state = self.lock();
        state
            .jobs
            .retain(|name, _| nodes.get(name).is_some_and(|n| n.config.schedule.is_some()));
        for (name, node) in &nodes {
            let Some(schedule) = &node.config.schedule else {
                continue;
            };
            match state.jobs.get_mut(name) {
                Some(job) if job.schedule == *schedule => job.retries = node.config.retries,
                _ => {
                    state.jobs.insert(
                        name.clone(),
                        Job {
                            schedule: schedule.clone(),
                            retries: node.config.retries,
                            next_at: schedule.next_after(now),
                            retry_at: None,
                            attempt: 0,
                            running: false,
                            last_run_at: None,
                            last_status: None,
                        },
                    );
                }
            }
        }
        state.nodes = nodes.clone();
        drop(state);
        self.wake.notify_one();
        Ok(nodes)
    }

    /// The models that have a schedule.
    pub fn scheduled(&self) -> Vec<String> {
        self.lock().jobs.keys().cloned().collect()
    }

    /// Runs jobs as they come due, until `shutdown` completes.
    pub async fn run_schedule(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let now = self.clock.now();
            let (due, next) = {
                let state = self.lock();
                let due = state
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.due_at() <= now)
                    .min_by_key(|(name, j)| (j.due_at(), (*name).clone()))
                    .map(|(name, _)| name.clone());
                (due, state.jobs.values().map(Job::due_at).min())
            };
            if let Some(model) = due {
                self.idle.send_replace(None);
                self.run_job(&model).await;
                continue;
            }
            self.idle.send_replace(Some(now));
            let until = next.unwrap_or(now + chrono::Duration::days(1));
            let sleep = self.clock.sleep_until(now, until);
            tokio::select! {
                () = sleep => {}
                () = self.wake.notified() => {}
                () = &mut shutdown => break,
            }
        }
    }

    /// Waits until the scheduler has nothing due at the clock's present
    /// time (for tests that move a [`clock::TestClock`]).
    pub async fn settled(&self) {
        let mut idle = self.idle.subscribe();
        let _ = idle.wait_for(|at| *at == Some(self.clock.now())).await;
    }

    async fn run_job(&self, model: &str) {
        let attempt = {
            let mut state = self.lock();
            let Some(job) = state.jobs.get_mut(model) else {
                return;
            };
            job.running = true;
            job.attempt
        };
        let trigger = if attempt == 0 { "schedule" } else { "retry" };
        let outcome = self
            .run(
                Some(format!("+{model}")),
                trigger,
                None,
                Some(model),
                attempt,
            )
            .await;
        let (ok, status) = match &outcome {
            Ok(r) if r.succeeded() => (true, "success".to_owned()),
            Ok(_) => (false, "failed".to_owned()),
            Err(e) => (false, format!("error: {e}")),
        };
        if let Err(e) = &outcome {
            tracing::warn!(model, error = %e, "scheduled run could not start");
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(model) else {
            return;
        };
        job.running = false;
        job.last_run_at = Some(outcome.as_ref().map_or(now, |r| r.started_at));
        job.last_status = Some(status);
        if !ok && job.attempt < job.retries {
            job.attempt += 1;
            let backoff = RETRY_BASE * 2i32.pow(job.attempt - 1);
            job.retry_at = Some(now + backoff.min(RETRY_CAP));
        } else {
            job.attempt = 0;
            job.retry_at = None;
            job.next_at = job.schedule.next_after(now.max(job.next_at));
        }
    }

    /// Runs models now, under the run lock, and records the run.
    async fn run(
        &self,
        selection: Option<String>,
        trigger: &str,
        user: Option<&str>,
        job: Option<&str>,
        attempt: u32,
    ) -> Result<RunRecord> {
        let _one_at_a_time = self.run_lock.lock().await;
        let nodes = self.reload()?;
        let selected = selection
            .as_deref()
            .map(|s| dag::select(&nodes, s))
            .transpose()?;
        let started = self.clock.now();
        let report = model_run::run(
            &self.engine,
            &nodes,
            selected.as_ref(),
            RunOptions {
                now: Some(started),
                ..RunOptions::default()
            },
            |_| {},
        )
        .await?;
        if let Some(dir) = &self.models {
            let activations = activation::load_dir(dir)?;
            activation::deliver_all(&self.engine, &activations, started).await;
        }
        let mut record = RunRecord::new(trigger, started, self.clock.now(), &report);
        record.triggered_by = user.map(str::to_owned);
        record.selection = selection;
        record.job = job.map(str::to_owned);
        record.attempt = attempt;
        self.history.write(self.engine.storage(), &record).await?;
        Ok(record)
    }
}

#[async_trait]
impl Operations for Jobs {
    fn tables(&self) -> Vec<(&'static str, SchemaRef)> {
        vec![
            ("models", tables::models_schema()),
            ("runs", tables::runs_schema()),
            ("jobs", tables::jobs_schema()),
        ]
    }

    async fn rows(&self, table: &str) -> Result<RecordBatch> {
        let now = self.clock.now();
        match table {
            "runs" => tables::runs(&self.history.all(self.engine.storage()).await?),
            "jobs" => {
                let jobs: Vec<(String, Job)> = self
                    .lock()
                    .jobs
                    .iter()
                    .map(|(n, j)| (n.clone(), j.clone()))
                    .collect();
                tables::jobs(&jobs)
            }
            "models" => {
                let runs = self.history.all(self.engine.storage()).await?;
                let (nodes, jobs) = {
                    let state = self.lock();
                    (state.nodes.clone(), state.jobs.clone())
                };
                tables::models(&self.engine, &nodes, &jobs, &runs, now)
            }
            other => Err(Error::Config(format!("no system table {other}"))),
        }
    }

    async fn run_models(&self, selection: Option<String>, user: &str) -> Result<RecordBatch> {
        let record = self.run(selection, "manual", Some(user), None, 0).await?;
        tables::run_result(&record)
    }
}
