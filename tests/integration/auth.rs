//! Users, roles and TLS through real clients: SCRAM-SHA-256 passwords
//! checked by tokio-postgres, psql and psycopg; an analyst limited to
//! queries and views in `segments`; TLS negotiated with `sslmode=require`;
//! and a server that refuses to start on a broken TLS configuration or on a
//! non-loopback address without users.

use std::path::Path;
use std::process::Command;

use profiledb::config::ConfigFile;
use profiledb::server::{Security, ServerOptions, auth};
use tokio_postgres::error::SqlState;

use crate::support::{TestServer, psql_command};

const ANALYST_PASSWORD: &str = "correct horse";
const ADMIN_PASSWORD: &str = "battery staple";

/// A self-signed certificate and key for `localhost`, made by openssl.
fn certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .expect("openssl must be installed (the README test command installs it)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A configuration file with an analyst and an admin (and TLS with `tls`).
fn config(dir: &Path, tls: bool) -> ConfigFile {
    let mut text = format!(
        "[[users]]\nname = \"ana\"\nrole = \"analyst\"\npassword = \"{}\"\n\n\
         [[users]]\nname = \"root\"\nrole = \"admin\"\npassword = \"{}\"\n",
        auth::verifier(ANALYST_PASSWORD),
        auth::verifier(ADMIN_PASSWORD)
    );
    if tls {
        certificate(dir);
        text.push_str("\n[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n");
    }
    let path = dir.join("profiledb.toml");
    std::fs::write(&path, text).unwrap();
    ConfigFile::load(&path).unwrap()
}

/// A server over `root` with the users (and TLS) of [`config`] in `dir`.
async fn start_with_users(root: &Path, dir: &Path, tls: bool) -> TestServer {
    let options = ServerOptions {
        security: Security::from_config(&config(dir, tls)).unwrap(),
        ..ServerOptions::default()
    };
    TestServer::start_with(root, options).await
}

async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn =
        format!("host=127.0.0.1 port={port} user={user} password='{password}' dbname=profiledb");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_roles() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = start_with_users(root.path(), dir.path(), false).await;
    let port = server.addr.port();

    // Wrong password, unknown user, no password: 28P01 alike.
    for (user, password) in [("ana", "wrong"), ("nobody", ANALYST_PASSWORD)] {
        let err = connect(port, user, password).await.expect_err("refused");
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {err}"
        );
    }
    let (ok, _, stderr) = server.psql(&["-w", "-c", "SELECT 1"]);
    assert!(!ok && stderr.contains("password"), "{stderr}");

    // The analyst queries and keeps segments, nothing else.
    let ana = connect(port, "ana", ANALYST_PASSWORD).await.unwrap();
    let shown = ana.simple_query("SHOW is_superuser").await.unwrap();
    let value = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("off"));
    // The session knows who it is, and its settings.
    ana.batch_execute("SET search_path = segments, public")
        .await
        .unwrap();
    let row = ana
        .query_one(
            "SELECT current_user, session_user, current_setting('search_path'), \
             current_setting('no_such_setting', true)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ana");
    assert_eq!(row.get::<_, String>(1), "ana");
    assert_eq!(row.get::<_, String>(2), "segments, public");
    assert_eq!(row.get::<_, Option<String>>(3), None);
    let err = ana
        .query_one("SELECT current_setting('no_such_setting')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_OBJECT), "{err}");
    ana.batch_execute("SET search_path = public").await.unwrap();
    ana.batch_execute("CREATE VIEW segments.big AS SELECT 1 AS profile_id")
        .await
        .unwrap();
    for sql in [
        "CREATE VIEW public.v AS SELECT 1 AS x",
        "CREATE SCHEMA mine",
        "DROP SCHEMA segments CASCADE",
        "CALL system.run()",
    ] {
        let err = ana.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    ana.batch_execute("DROP VIEW segments.big").await.unwrap();

    // An analyst may signal only their own connections.
    let root_client = connect(port, "root", ADMIN_PASSWORD).await.unwrap();
    let admin_pid: i32 = root_client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let users: Vec<String> = ana
        .query("SELECT usename FROM pg_stat_activity ORDER BY usename", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, ["ana", "root"]);
    let err = ana
        .query_one("SELECT pg_cancel_backend($1)", &[&admin_pid])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    let own: bool = ana
        .query_one("SELECT pg_cancel_backend(pg_backend_pid())", &[])
        .await
        .unwrap()
        .get(0);
    assert!(own);
    drop(root_client);

    // The admin may do all of it, through psql with its password.
    let (ok, stdout, stderr) = psql_command(port)
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .args(["-U", "root", "-v", "ON_ERROR_STOP=1", "-At"])
        .args(["-c", "CREATE SCHEMA mine", "-c", "SHOW is_superuser"])
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("on"), "{stdout}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_psql_and_psycopg() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = start_with_users(root.path(), dir.path(), true).await;
    let port = server.addr.port();

    let out = psql_command(port)
        .env("PGPASSWORD", ANALYST_PASSWORD)
        .env("PGSSLMODE", "require")
        .args(["-U", "ana", "-c", "\\conninfo", "-c", "SELECT 42 AS answer"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SSL connection"), "{stdout}");
    assert!(stdout.contains("42"), "{stdout}");

    let script = "import sys, psycopg\n\
                  c = psycopg.connect(host='127.0.0.1', port=int(sys.argv[1]), user='ana', \
                  password=sys.argv[2], dbname='profiledb', sslmode='require')\n\
                  print(c.execute('SELECT 7').fetchone()[0], c.info.pgconn.ssl_in_use)\n";
    let python = std::env::var("PROFILEDB_TEST_PYTHON")
        .expect("PROFILEDB_TEST_PYTHON: run the README test command (./scripts/test)");
    let out = Command::new(python)
        .args(["-c", script, &port.to_string(), ANALYST_PASSWORD])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7 True");
    server.stop().await;

    // Broken TLS: the server does not start (no fallback to plaintext).
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let err = Security::from_config(&ConfigFile::load(&dir.path().join("profiledb.toml")).unwrap())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("server.key"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_profiledb"))
        .arg("--data")
        .arg(root.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("profiledb.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}

#[test]
fn no_users_no_remote_listening() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_profiledb"))
        .arg("--data")
        .arg(root.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no users are configured"), "{stderr}");
    // `profiledb password` makes a verifier the configuration accepts.
    let mut child = Command::new(env!("CARGO_BIN_EXE_profiledb"))
        .arg("password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let verifier = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(auth::is_verifier(&verifier), "{verifier}");
}

/// This machine's first non-loopback IPv4 address (`hostname -I`).
fn non_loopback_address() -> Option<std::net::Ipv4Addr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .find(|a| !a.is_loopback())
}

/// Listening on every address with TLS configured: a client from another
/// address must use TLS (refused in plain text, with the reason), and
/// gets in with it; loopback clients may use either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_from_other_hosts_must_use_tls() {
    let address =
        non_loopback_address().expect("this test needs a non-loopback IPv4 address (hostname -I)");
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let options = ServerOptions {
        security: Security::from_config(&config(dir.path(), true)).unwrap(),
        ..ServerOptions::default()
    };
    let server = TestServer::start_on(root.path(), options, "0.0.0.0:0").await;
    let port = server.addr.port();
    let psql = |host: String, sslmode: &str| {
        psql_command(port)
            .env("PGPASSWORD", ANALYST_PASSWORD)
            .env("PGSSLMODE", sslmode)
            .args(["-h", &host, "-U", "ana", "-At", "-c", "SELECT 7"])
            .output()
            .unwrap()
    };
    let plain = psql(address.to_string(), "disable");
    assert!(!plain.status.success());
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("requires TLS from other hosts"), "{stderr}");
    for (host, sslmode) in [
        (address.to_string(), "require"),
        ("127.0.0.1".to_owned(), "disable"),
    ] {
        let out = psql(host.clone(), sslmode);
        assert!(
            out.status.success(),
            "{host} {sslmode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
    }
    server.stop().await;
}
