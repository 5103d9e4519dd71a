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

/// The longest entry of [`JUNK`], in bytes.
const LONGEST_JUNK: usize = 19;

/// True for placeholder values; `Some(reason)` says which kind. Called for
/// every distinct identifier, so it allocates nothing and stops at the
/// first byte that decides.
pub fn junk_reason(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.bytes().all(|b| b == b'0' || b == b'-') {
        return Some("junk value: empty, zeros or dashes");
    }
    if v.len() <= LONGEST_JUNK && JUNK.iter().any(|j| j.eq_ignore_ascii_case(v)) {
        return Some("junk value: placeholder");
    }
    if !v.chars().any(char::is_alphanumeric) {
        return Some("junk value: no letters or digits");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_junk_real_ids_are_not() {
        assert_eq!(JUNK.iter().map(|j| j.len()).max(), Some(LONGEST_JUNK));
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
            "NoEmail@NoEmail.com",
            " ?? ",
        ] {
            assert!(junk_reason(v).is_some(), "{v:?}");
        }
        for v in [
            "u_123",
            "ana@x.com",
            "+14155550100",
            "3f2a9c1e-0000-4000-8000-000000000001",
            "nullable",
            "é",
        ] {
            assert!(junk_reason(v).is_none(), "{v:?}");
        }
    }
}
