//! The command line: subcommands map to library calls; any error is printed
//! once, with its context, and turns into a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{self, DEFAULT_DATA, DEFAULT_LISTEN};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::generate::{GenerateOptions, generate};
use crate::jobs::Jobs;
use crate::jobs::clock::SystemClock;
use crate::jobs::history::{History, RunRecord};
use crate::models::data_tests::{self, TestOutcome};
use crate::models::run::{BuildMode, Event, ModelStatus, RunOptions};
use crate::models::{self, dag};
use crate::segments::activation;
use crate::server::{self, ServerOptions};
use crate::storage::{Storage, layout};

#[derive(Debug, Parser)]
#[command(
    name = "profiledb",
    version,
    about = "A SQL-native customer data platform engine"
)]
pub struct Cli {
    /// Storage root: a local folder, file:// or memory:// URL.
    #[arg(long, global = true, env = "PROFILEDB_DATA", default_value = DEFAULT_DATA)]
    pub data: String,

    /// Memory limit for query execution, e.g. `8GiB` or `512MiB`: sorts and
    /// aggregations spill to disk past it, identity resolution stops with
    /// a message saying how much it needs (default: no limit).
    #[arg(long, global = true, env = "PROFILEDB_MEMORY_LIMIT", value_parser = config::byte_size)]
    pub memory_limit: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate sample data (if the root is empty), build every model, serve.
    Demo {
        #[arg(long, default_value_t = 10_000)]
        people: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, env = "PROFILEDB_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: String,
    },
    /// Write synthetic, realistic multi-source data with ground truth.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        people: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number the people from here: a batch generated from another
        /// number on is other people (new customers landing later).
        #[arg(long, default_value_t = 0)]
        first_person: u64,
        /// Last day of the generated year of activity (default: today).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Build the models in dependency order.
    Run {
        /// A folder of .sql models (default: the shipped models).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Models to build: `name`, `name+` (and what reads it), `+name`
        /// (and what it reads), comma-separated.
        #[arg(long)]
        select: Option<String>,
        /// Rebuild incremental models from all their input.
        #[arg(long)]
        full_refresh: bool,
    },
    /// Run the models' data tests (schema files' column tests and
    /// `tests/*.sql`); fails when a test of severity error finds rows.
    Test {
        /// A folder of .sql models with .yml schema files (default: the
        /// shipped models).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Test only these models (the same syntax as `run --select`).
        #[arg(long)]
        select: Option<String>,
    },
    /// Serve the PostgreSQL wire protocol.
    Serve {
        #[arg(long, env = "PROFILEDB_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: String,
        #[arg(long, default_value_t = 100)]
        max_connections: usize,
        /// A TOML file of users (with roles and SCRAM verifiers) and TLS
        /// settings. Without users, only loopback clients are served.
        #[arg(long, env = "PROFILEDB_CONFIG")]
        config: Option<PathBuf>,
        /// Memory for published table versions kept decoded, e.g. `2GiB`
        /// (0: read Parquet every time). A version is kept when about four
        /// times its Parquet size fits.
        #[arg(long, env = "PROFILEDB_RESIDENT_MEMORY", value_parser = config::byte_size, default_value = "2GiB")]
        resident_memory: usize,
        /// The models the scheduler runs and `CALL system.run()` builds
        /// (default: the shipped models).
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Print a SCRAM-SHA-256 verifier of the password read from standard
    /// input, for a user's `password` in the configuration file.
    Password,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROFILEDB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal, plain text for a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Generate {
            people,
            seed,
            first_person,
            as_of,
        } => {
            let storage = Storage::open(&cli.data)?;
            let options = GenerateOptions {
                people,
                first_person,
                seed,
                as_of: config::as_of(as_of.as_deref())?,
            };
            generate_data(&storage, &options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            models,
            select,
            full_refresh,
        } => {
            let engine = Engine::open_limited(&cli.data, cli.memory_limit).await?;
            let options = RunOptions {
                full_refresh,
                ..RunOptions::default()
            };
            run_models(&engine, models.as_deref(), select.as_deref(), options).await
        }
        Command::Test { models, select } => {
            let engine = Engine::open_limited(&cli.data, cli.memory_limit).await?;
            test_models(&engine, models.as_deref(), select.as_deref()).await
        }
        Command::Serve {
            listen,
            max_connections,
            config,
            resident_memory,
            models,
        } => {
            let file = match &config {
                Some(path) => config::ConfigFile::load(path)?,
                None => config::ConfigFile::default(),
            };
            let security = server::Security::from_config(&file)?;
            let addr = config::listen_address(&listen, security.users.is_some())?;
            let engine = Engine::open_limited(&cli.data, cli.memory_limit).await?;
            let options = ServerOptions {
                max_connections,
                security,
                resident_memory: resident_memory as u64,
                ..ServerOptions::default()
            };
            serve(engine, addr, options, models).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Password => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Error::io("reading the password from standard input", e))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(Error::Config("an empty password was read".into()));
            }
            println!("{}", server::auth::verifier(password));
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            people,
            seed,
            listen,
        } => {
            let addr = config::listen_address(&listen, false)?;
            let storage = Storage::open(&cli.data)?;
            if storage.is_empty(layout::RAW).await? {
                let options = GenerateOptions {
                    people,
                    first_person: 0,
                    seed,
                    as_of: config::as_of(None)?,
                };
                generate_data(&storage, &options).await?;
            } else {
                eprintln!("{} already holds raw data; not generating more", cli.data);
            }
            let engine = Engine::with_storage(storage, cli.memory_limit).await?;
            let code = run_models(&engine, None, None, RunOptions::default()).await?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            serve(engine, addr, ServerOptions::default(), None).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn generate_data(storage: &Storage, options: &GenerateOptions) -> Result<()> {
    let bar = ProgressBar::new(options.people).with_style(
        ProgressStyle::with_template("generating {bar:30} {pos}/{len} people ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = generate(storage, options, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} people: {} events, {} orders, {} CRM contacts in {} files ({:.1} s)",
        summary.people,
        summary.events,
        summary.orders,
        summary.contacts,
        summary.files,
        summary.seconds
    );
    Ok(())
}

async fn run_models(
    engine: &Arc<Engine>,
    dir: Option<&std::path::Path>,
    select: Option<&str>,
    options: RunOptions,
) -> Result<ExitCode> {
    let models = match dir {
        Some(d) => models::load_dir(d)?,
        None => models::default_models(),
    };
    let nodes = dag::build(models)?;
    let selection = select.map(|s| dag::select(&nodes, s)).transpose()?;
    let bar = ProgressBar::new_spinner();
    let started = chrono::Utc::now();
    let report = models::run::run(
        engine,
        &nodes,
        selection.as_ref(),
        options,
        |event| match event {
            Event::Started {
                model,
                index,
                total,
            } => {
                bar.set_message(format!("[{}/{total}] building {model}", index + 1));
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
            }
            Event::Finished(m) => {
                let line = match m.status {
                    ModelStatus::Built if m.mode == BuildMode::View => {
                        format!(
                            "  ok    {:<22} {:>12} {:>15} {:>8.2} s",
                            m.model, "view", "", m.seconds
                        )
                    }
                    ModelStatus::Built => format!(
                        "  ok    {:<22} {:>12} rows {:>10} {:>8.2} s{}",
                        m.model,
                        m.rows,
                        human_bytes(m.bytes),
                        m.seconds,
                        match m.mode {
                            BuildMode::Full => m
                                .note
                                .as_ref()
                                .map(|n| format!("  (rebuilt: {n})"))
                                .unwrap_or_default(),
                            BuildMode::Incremental if m.deleted_rows > 0 => format!(
                                "  (incremental: +{} -{} rows{})",
                                m.new_rows,
                                m.deleted_rows,
                                if m.compacted { ", compacted" } else { "" }
                            ),
                            BuildMode::Incremental =>
                                format!("  (incremental: +{} rows)", m.new_rows),
                            BuildMode::Changes => format!(
                                "  ({}: +{} -{}{})",
                                m.note
                                    .as_ref()
                                    .map(|n| format!("rebuilt: {n}; changed rows"))
                                    .unwrap_or_else(|| "rebuilt, changed rows".into()),
                                m.new_rows,
                                m.deleted_rows,
                                if m.compacted { ", compacted" } else { "" }
                            ),
                            BuildMode::Unchanged => "  (unchanged)".to_owned(),
                            BuildMode::View => String::new(),
                        }
                    ),
                    ModelStatus::Failed => format!(
                        "  FAIL  {:<22} {}",
                        m.model,
                        m.error.as_deref().unwrap_or("")
                    ),
                    ModelStatus::Skipped => format!(
                        "  skip  {:<22} {}",
                        m.model,
                        m.error.as_deref().unwrap_or("")
                    ),
                };
                bar.suspend(|| eprintln!("{line}"));
            }
            Event::Segment(s) => {
                let line = match &s.error {
                    None => format!(
                        "  ok    segments.{:<13} {:>12} members  (+{} -{})",
                        s.segment, s.members, s.entered, s.exited
                    ),
                    Some(e) => format!("  FAIL  segments.{:<13} {e}", s.segment),
                };
                bar.suspend(|| eprintln!("{line}"));
            }
        },
    )
    .await?;
    bar.finish_and_clear();
    if let Some(dir) = dir {
        let activations = activation::load_dir(dir)?;
        for d in activation::deliver_all(engine, &activations, started).await {
            match &d.error {
                None => eprintln!(
                    "  ok    activation {:<11} {:>12} members, {} changes{}{}",
                    d.activation,
                    d.members,
                    d.changes,
                    d.exported_to
                        .as_ref()
                        .map(|p| format!(", exported to {p}"))
                        .unwrap_or_default(),
                    if d.batches_delivered + d.batches_dead_lettered > 0 {
                        format!(
                            ", {} batches delivered, {} dead-lettered",
                            d.batches_delivered, d.batches_dead_lettered
                        )
                    } else {
                        String::new()
                    }
                ),
                Some(e) => eprintln!("  FAIL  activation {:<11} {e}", d.activation),
            }
        }
    }
    let mut record = RunRecord::new("cli", started, chrono::Utc::now(), &report);
    record.triggered_by = std::env::var("USER").ok();
    record.selection = select.map(str::to_owned);
    History::default().write(engine.storage(), &record).await?;
    let failed = report.failed();
    if failed.is_empty() {
        eprintln!("built {} models", report.models.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} of {} models did not build; their previous versions are still served",
            failed.len(),
            report.models.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn test_models(
    engine: &Arc<Engine>,
    dir: Option<&std::path::Path>,
    select: Option<&str>,
) -> Result<ExitCode> {
    let (models, mut tests) = match dir {
        Some(d) => (models::load_dir(d)?, data_tests::load_dir(d)?),
        None => (models::default_models(), data_tests::default_tests()?),
    };
    if let Some(select) = select {
        let nodes = dag::build(models)?;
        let selected = dag::select(&nodes, select)?;
        tests.retain(|t| t.models.iter().any(|m| selected.contains(m)));
    }
    let total = tests.len();
    let results = data_tests::run(engine, tests, |r| {
        let name = &r.test.name;
        match &r.outcome {
            TestOutcome::Pass => eprintln!("  PASS  {name:<60} {:>8.2} s", r.seconds),
            TestOutcome::Fail { failures, sample } => {
                let word = if r.fails() { "FAIL" } else { "WARN" };
                eprintln!(
                    "  {word}  {name:<60} {:>8.2} s  {failures} failing row{}",
                    r.seconds,
                    if *failures == 1 { "" } else { "s" }
                );
                for row in sample {
                    eprintln!("          {row}");
                }
            }
            TestOutcome::Error(e) => eprintln!("  ERROR {name:<60} {e}"),
        }
    })
    .await;
    let count =
        |f: &dyn Fn(&data_tests::TestResult) -> bool| results.iter().filter(|r| f(r)).count();
    let passed = count(&|r| matches!(r.outcome, TestOutcome::Pass));
    let errors = count(&|r| matches!(r.outcome, TestOutcome::Error(_)));
    let failed = count(&|r| matches!(r.outcome, TestOutcome::Fail { .. }) && r.fails());
    let warned = total - passed - errors - failed;
    eprintln!(
        "ran {total} tests: {passed} passed, {failed} failed, {warned} warned, {errors} errors"
    );
    Ok(if failed + errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(
    engine: Arc<Engine>,
    addr: std::net::SocketAddr,
    options: ServerOptions,
    models: Option<PathBuf>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    // The bound address (a port of 0 picks a free one).
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listen address", e))?;
    eprintln!(
        "profiledb is listening on {addr}{}{}\n  connect with: psql -h {} -p {} -U analyst profiledb",
        if options.security.users.is_some() {
            " (SCRAM-SHA-256 passwords)"
        } else {
            ""
        },
        if options.security.tls.is_some() {
            " (TLS)"
        } else {
            ""
        },
        addr.ip(),
        addr.port()
    );
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        eprintln!("shutting down");
    };
    // The scheduler runs beside the server and stops with it.
    let jobs = Jobs::new(Arc::clone(&engine), models, Arc::new(SystemClock)).await?;
    let scheduled = jobs.scheduled();
    if !scheduled.is_empty() {
        eprintln!("  scheduled models: {}", scheduled.join(", "));
    }
    let schedule = tokio::spawn(jobs.run_schedule(std::future::pending()));
    let served = server::serve(listener, engine, shutdown, options).await;
    schedule.abort();
    served
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}
