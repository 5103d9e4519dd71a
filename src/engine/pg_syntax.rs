//! PostgreSQL syntax the SQL parser does not take, rewritten in the text
//! before parsing (the statement-level rewrites are in `pg_dialect`):
//!
//! - `COMMENT ON … IS $tag$text$tag$` (dbt's `persist_docs`): the
//!   dollar-quoted text becomes an ordinary literal;
//! - `FETCH [direction] [FROM | IN] cursor`: the parser wants both a
//!   direction and `FROM`/`IN`, PostgreSQL neither, so the statement is
//!   restated as `FETCH direction FROM cursor` (no direction is `NEXT`, a
//!   bare `FORWARD` is `FORWARD 1`).
//!
//! Works on tokens, so strings and comments are never mistaken for
//! keywords; SQL without these forms is returned unchanged.

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub fn normalize(sql: &str) -> Cow<'_, str> {
    let comment = sql.contains('$') && contains_ignoring_case(sql, "comment");
    if !comment && !contains_ignoring_case(sql, "fetch") {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Cow::Borrowed(sql);
    };
    let tokens: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let offsets = Offsets::new(sql);
    // (start, end, replacement), in order.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for statement in tokens.split(|t| t.token == Token::SemiColon) {
        if let Some(edit) = fetch(statement, sql, &offsets) {
            edits.push(edit);
        }
        for pair in statement.windows(2) {
            if let (Token::Word(w), Token::DollarQuotedString(s)) = (&pair[0].token, &pair[1].token)
                && w.keyword == Keyword::IS
                && let (Some(start), Some(end)) =
                    (offsets.of(pair[1].span.start), offsets.of(pair[1].span.end))
            {
                edits.push((start, end, format!("'{}'", s.value.replace('\'', "''"))));
            }
        }
    }
    if edits.is_empty() {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (start, end, replacement) in edits {
        out.push_str(&sql[copied..start]);
        out.push_str(&replacement);
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

fn contains_ignoring_case(sql: &str, word: &str) -> bool {
    sql.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// `FETCH …` restated as `FETCH direction FROM cursor`.
fn fetch(
    statement: &[&TokenWithSpan],
    sql: &str,
    offsets: &Offsets,
) -> Option<(usize, usize, String)> {
    let (first, rest) = statement.split_first()?;
    if !matches!(&first.token, Token::Word(w) if w.keyword == Keyword::FETCH) {
        return None;
    }
    let (name, direction) = rest.split_last()?;
    let is_word =
        |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    let direction: Vec<&&TokenWithSpan> = direction
        .iter()
        .filter(|t| !is_word(t, Keyword::FROM) && !is_word(t, Keyword::IN))
        .collect();
    let start = offsets.of(first.span.end)?;
    let end = offsets.of(name.span.end)?;
    let name_text = &sql[offsets.of(name.span.start)?..end];
    let words: Vec<String> = direction.iter().map(|t| t.token.to_string()).collect();
    let direction = match words.as_slice() {
        [] => "NEXT".to_owned(),
        [w] if w.eq_ignore_ascii_case("forward") => "FORWARD 1".to_owned(),
        [w] if w.eq_ignore_ascii_case("backward") => "BACKWARD 1".to_owned(),
        _ => words.join(" "),
    };
    Some((start, end, format!(" {direction} FROM {name_text}")))
}

/// Byte offsets of the tokenizer's (line, column) locations.
struct Offsets<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { sql, line_starts }
    }

    fn of(&self, loc: Location) -> Option<usize> {
        let start = *self
            .line_starts
            .get(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        Some(match self.sql[start..].char_indices().nth(column) {
            Some((i, _)) => start + i,
            None => self.sql.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_quoted_comments_become_literals() {
        let sql = "/* dbt */ comment on table \"a\".\"b\" is $x$It's \"new\"$x$;\n\
                   comment on column a.b.c is $$two\nlines$$";
        assert_eq!(
            normalize(sql),
            "/* dbt */ comment on table \"a\".\"b\" is 'It''s \"new\"';\n\
             comment on column a.b.c is 'two\nlines'"
        );
        let plain = "select 'comment', $1, $$x$$ is null";
        assert!(matches!(normalize(plain), Cow::Borrowed(_)));
    }

    #[test]
    fn fetch_gets_a_direction_and_from() {
        assert_eq!(normalize("FETCH c1"), "FETCH NEXT FROM c1");
        assert_eq!(normalize("fetch next c1;"), "fetch next FROM c1;");
        assert_eq!(normalize("FETCH 2048 IN \"C\""), "FETCH 2048 FROM \"C\"");
        assert_eq!(normalize("FETCH FORWARD FROM c"), "FETCH FORWARD 1 FROM c");
        assert_eq!(
            normalize("BEGIN; FETCH FORWARD 10 FROM c; FETCH ALL c"),
            "BEGIN; FETCH FORWARD 10 FROM c; FETCH ALL FROM c"
        );
        assert!(matches!(
            normalize("SELECT 'fetch x' AS fetch_me"),
            Cow::Borrowed(_)
        ));
    }
}
