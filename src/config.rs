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
    fn non_loopback_listen_is_refused() {
        assert!(listen_address("127.0.0.1:5433").is_ok());
        let err = listen_address("0.0.0.0:5433").unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(listen_address("nonsense").is_err());
    }
}
