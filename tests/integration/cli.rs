//! The `profiledb` binary itself: `demo` end to end (generate, run, serve)
//! reached with psql, `--data` after the subcommand, SIGTERM for a clean
//! stop, and a failing `run` that exits 1 naming the model.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Kills the child if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn profiledb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_profiledb"))
}

#[test]
fn demo_generates_builds_and_serves() {
    let root = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        profiledb()
            .args([
                "demo",
                "--people",
                "300",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(root.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = loop {
        let line = lines.next().expect("demo ended before listening").unwrap();
        seen.push(line.clone());
        if let Some(addr) = line.strip_prefix("profiledb is listening on ") {
            break addr.rsplit(':').next().unwrap().to_owned();
        }
    };
    assert!(
        seen.iter().any(|l| l.contains("generated 300 people")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("built 14 models")),
        "{seen:?}"
    );
    let out = crate::support::psql_command(port.parse().unwrap())
        .arg("-At")
        .args(["-c", "SELECT count(*) > 0 FROM profiles"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Command::new("kill")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM stops the server cleanly: {status}"
    );
}

#[test]
fn run_exits_non_zero_naming_the_failed_model() {
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("good.sql"), "SELECT 1 AS one").unwrap();
    std::fs::write(
        models.join("bad.sql"),
        "SELECT one,\n  missing_column\nFROM good",
    )
    .unwrap();
    let out = profiledb()
        .arg("--data")
        .arg(root.path().join("data"))
        .args(["run", "--models"])
        .arg(&models)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("model bad")
            && stderr.contains("bad.sql")
            && stderr.contains("missing_column"),
        "{stderr}"
    );
    assert!(stderr.contains("ok    good"), "{stderr}");
}
