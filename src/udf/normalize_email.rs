//! `normalize_email(text) → text`: the canonical form of an email address, so
//! that `Ana@X.com `, `mailto:ana@x.com` and `ana+news@x.com` meet.
//!
//! Rules: trim, drop a `mailto:` prefix and surrounding `<>`/quotes, remove
//! inner whitespace, lowercase, drop a `+tag` from the local part (sub-address
//! of the same mailbox), and for Gmail drop dots in the local part and map
//! `googlemail.com` to `gmail.com`. Anything that is not `local@domain.tld`
//! gives NULL.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::map_strings;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizeEmailUdf {
    signature: Signature,
}

impl NormalizeEmailUdf {
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl Default for NormalizeEmailUdf {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for NormalizeEmailUdf {
    fn name(&self) -> &str {
        "normalize_email"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_strings(&args.args[0], args.number_rows, normalize_email)
    }
}

/// Writes the canonical form of `raw` into `out`; false when it is no email.
pub fn normalize_email(raw: &str, out: &mut String) -> bool {
    let mut s = raw.trim();
    if s.len() >= 7 && s[..7].eq_ignore_ascii_case("mailto:") {
        s = &s[7..];
    }
    let s = s
        .trim_matches(|c: char| c == '<' || c == '>' || c == '"' || c == '\'' || c.is_whitespace());
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let domain: String = domain
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let domain = domain.trim_end_matches('.');
    let local: String = local
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let local = local.split('+').next().unwrap_or("");
    let valid_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    if local.is_empty() || local.contains('@') || !valid_domain {
        return false;
    }
    let (local, domain) = if domain == "gmail.com" || domain == "googlemail.com" {
        (local.replace('.', ""), "gmail.com")
    } else {
        (local.to_owned(), domain)
    };
    if local.is_empty() {
        return false;
    }
    out.push_str(&local);
    out.push('@');
    out.push_str(domain);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<String> {
        let mut out = String::new();
        normalize_email(s, &mut out).then_some(out)
    }

    #[test]
    fn spellings_of_one_address_meet() {
        for s in [
            "Ana@X.com ",
            " ana@x.COM",
            "mailto:ana@x.com",
            "<ana@x.com>",
            "ana+news@x.com",
            "a na@x.com",
        ] {
            assert_eq!(n(s).as_deref(), Some("ana@x.com"), "{s:?}");
        }
        assert_eq!(n("A.N.A@googlemail.com").as_deref(), Some("ana@gmail.com"));
    }

    #[test]
    fn non_emails_are_null() {
        for s in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@localhost",
            "ana@x..com",
            "null",
        ] {
            assert_eq!(n(s), None, "{s:?}");
        }
    }
}
