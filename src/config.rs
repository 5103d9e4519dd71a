//! Settings from the command line and `PROFILEDB_*` environment variables
//! (clap reads both), validated once here so the rest of the crate receives
//! values it can trust.

use std::net::SocketAddr;

use crate::error::{Error, Result};

pub const DEFAULT_DATA: &str = "./profiledb-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";

/// A validated listen address: loopback only while there is no
/// authentication (see `server::check_listen`).
pub fn listen_address(raw: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = raw.parse().map_err(|e| {
        Error::Config(format!(
            "--listen {raw:?} is not an address like 127.0.0.1:5433: {e}"
        ))
    })?;
    crate::server::check_listen(&addr)?;
    Ok(addr)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_listen_is_refused() {
        assert!(listen_address("127.0.0.1:5433").is_ok());
        let err = listen_address("0.0.0.0:5433").unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(listen_address("nonsense").is_err());
    }
}
