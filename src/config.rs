//! Settings from the command line and `PROFILEDB_*` environment variables
//! (clap reads both), validated once here so the rest of the crate receives
//! values it can trust.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_DATA: &str = "./profiledb-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";

/// A validated listen address: loopback only unless users are configured
/// (see `server::check_listen`).
pub fn listen_address(raw: &str, authenticated: bool) -> Result<SocketAddr> {
    let addr: SocketAddr = raw.parse().map_err(|e| {
        Error::Config(format!(
            "--listen {raw:?} is not an address like 127.0.0.1:5433: {e}"
        ))
    })?;
    crate::server::check_listen(&addr, authenticated)?;
    Ok(addr)
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: DDL in every schema, model runs.
    Admin,
    /// Queries, and views in schema `segments`.
    Analyst,
}

/// The configuration file (`profiledb serve --config FILE`, TOML):
///
/// ```toml
/// [[users]]
/// name = "ana"
/// role = "analyst"            # or "admin"
/// password = "SCRAM-SHA-256$4096:…"   # from `profiledb password`
///
/// [tls]
/// cert = "server.crt"         # PEM chain; paths relative to this file
/// key = "server.key"          # PEM private key
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub users: Vec<UserConfig>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    /// A SCRAM-SHA-256 verifier, never a password.
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ConfigFile {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading the configuration {}", path.display()), e))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("configuration {}: {e}", path.display())))?;
        let mut seen = std::collections::HashSet::new();
        for u in &config.users {
            if !seen.insert(u.name.as_str()) {
                return Err(Error::Config(format!(
                    "configuration {}: user {} is listed twice",
                    path.display(),
                    u.name
                )));
            }
            if !crate::server::auth::is_verifier(&u.password) {
                return Err(Error::Config(format!(
                    "configuration {}: user {}: password must be a SCRAM-SHA-256 verifier, \
                     not a password (make one with `profiledb password`)",
                    path.display(),
                    u.name
                )));
            }
        }
        if let Some(tls) = &mut config.tls {
            let dir = path.parent().unwrap_or(Path::new("."));
            tls.cert = dir.join(&tls.cert);
            tls.key = dir.join(&tls.key);
        }
        Ok(config)
    }
}

/// Parses `--as-of YYYY-MM-DD` (midnight UTC) into µs since the epoch;
/// default: the start of today, UTC.
pub fn as_of(raw: Option<&str>) -> Result<i64> {
    let date = match raw {
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| {
            Error::Config(format!("--as-of {s:?} is not a date like 2026-01-31: {e}"))
        })?,
        None => chrono::Utc::now().date_naive(),
    };
    Ok(date
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_micros())
}

/// Parses a size such as `512MiB`, `8GiB`, `2GB` or a number of bytes.
pub fn byte_size(raw: &str) -> std::result::Result<usize, String> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a size like 512MiB or 8GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {raw:?}")),
    };
    Ok((n * scale) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(byte_size("8GiB"), Ok(8 << 30));
        assert_eq!(byte_size("1.5g"), Ok(3 << 29));
        assert_eq!(byte_size("4096"), Ok(4096));
        assert!(byte_size("lots").is_err());
        assert!(byte_size("3 parsecs").is_err());
    }

    #[test]
    fn non_loopback_listen_needs_authentication() {
        assert!(listen_address("127.0.0.1:5433", false).is_ok());
        let err = listen_address("0.0.0.0:5433", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(listen_address("0.0.0.0:5433", true).is_ok());
        assert!(listen_address("nonsense", true).is_err());
    }

    #[test]
    fn configuration_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiledb.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write(&format!(
            "[[users]]\nname = \"ana\"\nrole = \"analyst\"\npassword = \"{}\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
            crate::server::auth::verifier("x")
        ));
        let config = ConfigFile::load(&path).unwrap();
        assert_eq!(config.users[0].role, Role::Analyst);
        assert_eq!(config.tls.unwrap().cert, dir.path().join("c.pem"));
        write("[[users]]\nname = \"ana\"\nrole = \"analyst\"\npassword = \"plain\"\n");
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("profiledb password"), "{err}");
        write("[[users]]\nname = \"ana\"\nrole = \"root\"\npassword = \"x\"\n");
        assert!(ConfigFile::load(&path).is_err());
    }
}
