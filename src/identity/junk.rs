//! Values that upstream tools write when they have no identifier: they must
//! never link two people, and are reported as rejected instead.

/// Placeholders seen in real event pipelines, compared case-insensitively
/// after trimming.
const JUNK: &[&str] = &[
    "",
    "null",
    "nil",
    "none",
    "undefined",
    "nan",
    "0",
    "-1",
    "anonymous",
    "unknown",
    "n/a",
    "na",
    "guest",
    "[object object]",
    "test@test.com",
    "test@example.com",
    "noemail@noemail.com",
    "no@email.com",
];

/// True for placeholder values; `Some(reason)` says which kind.
pub fn junk_reason(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.chars().all(|c| c == '0' || c == '-') {
        return Some("junk value: empty, zeros or dashes");
    }
    let lower = v.to_ascii_lowercase();
    if JUNK.contains(&lower.as_str()) {
        return Some("junk value: placeholder");
    }
    if lower.chars().all(|c| !c.is_alphanumeric()) {
        return Some("junk value: no letters or digits");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_junk_real_ids_are_not() {
        for v in [
            "null",
            " NULL ",
            "undefined",
            "0",
            "00000000-0000-0000-0000-000000000000",
            "",
            "anonymous",
            "-1",
            "--",
        ] {
            assert!(junk_reason(v).is_some(), "{v:?}");
        }
        for v in [
            "u_123",
            "ana@x.com",
            "+14155550100",
            "3f2a9c1e-0000-4000-8000-000000000001",
        ] {
            assert!(junk_reason(v).is_none(), "{v:?}");
        }
    }
}
