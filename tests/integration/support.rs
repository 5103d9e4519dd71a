//! A test server on 127.0.0.1:0 over a storage root in a temp folder, and
//! clients for it (tokio-postgres and the `psql` binary).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

use profiledb::engine::Engine;
use profiledb::generate::{GenerateOptions, generate};
use profiledb::models::{self, dag, run::RunReport};
use profiledb::server::{ServerOptions, serve};
use profiledb::storage::Storage;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server over the storage root `root`.
    pub async fn start(root: &Path) -> Self {
        Self::start_with(root, ServerOptions::default()).await
    }

    /// Starts a server with `options` (users, TLS) over `root`.
    pub async fn start_with(root: &Path, options: ServerOptions) -> Self {
        Self::start_on(root, options, "127.0.0.1:0").await
    }

    /// Starts a server listening on `bind` (e.g. `0.0.0.0:0`).
    pub async fn start_on(root: &Path, options: ServerOptions, bind: &str) -> Self {
        let engine = Engine::open(root.to_str().unwrap()).await.expect("engine");
        Self::serve_engine(engine, options, bind).await
    }

    /// Serves an engine the test opened (to run jobs beside it).
    pub async fn serve_engine(engine: Arc<Engine>, options: ServerOptions, bind: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(
                listener,
                engine,
                async {
                    let _ = stopped.await;
                },
                options,
            )
            .await
            .expect("server");
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=analyst dbname=profiledb",
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Runs the real `psql` with `args`; returns (success, stdout, stderr).
    pub fn psql(&self, args: &[&str]) -> (bool, String, String) {
        let out = psql_command(self.addr.port())
            .args(["-v", "ON_ERROR_STOP=1"])
            .args(args)
            .output()
            .expect("the psql binary must be installed (the README test command installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The real `psql` connecting to a server on loopback at `port`.
pub fn psql_command(port: u16) -> Command {
    let mut c = Command::new("psql");
    c.args([
        "-X",
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "analyst",
        "-d",
        "profiledb",
    ]);
    c.env("PGCONNECT_TIMEOUT", "10");
    c
}

/// A storage root with generated data in a fresh temp folder.
pub async fn generated_root(people: u64, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
    let options = GenerateOptions {
        people,
        first_person: 0,
        seed,
        as_of: profiledb::config::as_of(Some("2026-06-30")).unwrap(),
    };
    generate(&storage, &options, |_| {})
        .await
        .expect("generate");
    dir
}

/// Builds the shipped models (or those of `models_dir`) over `root`.
pub async fn run_models(root: &Path, models_dir: Option<&Path>) -> RunReport {
    let engine: Arc<Engine> = Engine::open(root.to_str().unwrap()).await.unwrap();
    let models = match models_dir {
        Some(d) => models::load_dir(d).unwrap(),
        None => models::default_models(),
    };
    let nodes = dag::build(models).unwrap();
    models::run::run(&engine, &nodes, None, Default::default(), |_| {})
        .await
        .expect("run")
}

/// Copies the shipped models into a folder a test may modify.
pub fn copy_default_models(to: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    to.to_path_buf()
}

/// Writes one Parquet file with the given columns.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Every row of a simple query, its values joined by `|` (NULL as `∅`),
/// in the server's order.
pub async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("∅"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// Runs the `profiledb` binary over `root`: (success, its stderr).
pub fn profiledb(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_profiledb"))
        .arg("--data")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
