//! `COPY`: `COPY (query) TO STDOUT` and `COPY table TO STDOUT` (psql's
//! `\copy … to`), and `COPY source FROM STDIN` (psql's `\copy … from`),
//! in PostgreSQL's text and CSV formats.
//!
//! A COPY into a raw source lands the rows in the landing zone as one new
//! Parquet file (`raw/<source>/copy-<time>-<n>.parquet`, written in one
//! atomic put), typed by the source's schema; a COPY into a table appends
//! to it like INSERT. Either way all rows are parsed and checked first: a
//! bad line fails the whole COPY, naming the line and column, and nothing
//! is written. The wire server carries the data (see `server::copy`).

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};

use super::search_path;
use super::session::{Outcome, Session, not_supported};
use crate::catalog::RelationKind;
use crate::error::{CatalogError, Error, Result};
use crate::storage::layout;

/// How COPY data is written: PostgreSQL's text format (tab-separated,
/// `\N` for NULL, backslash escapes) or CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    pub csv: bool,
    pub header: bool,
    pub delimiter: char,
    pub null: String,
    pub quote: char,
}

impl CopyFormat {
    fn parse(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let mut csv = false;
        let (mut header, mut delimiter, mut null, mut quote) = (false, None, None, '"');
        for o in options {
            match o {
                CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                    "csv" => csv = true,
                    "text" => csv = false,
                    other => return Err(not_supported(&format!("COPY format {other}"))),
                },
                CopyOption::Header(h) => header = *h,
                CopyOption::Delimiter(d) => delimiter = Some(*d),
                CopyOption::Null(n) => null = Some(n.clone()),
                CopyOption::Quote(q) => quote = *q,
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(not_supported(&format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for c in csv_options {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = *q,
                            other => return Err(not_supported(&format!("COPY option {other}"))),
                        }
                    }
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
                CopyLegacyOption::Null(n) => null = Some(n.clone()),
                other => return Err(not_supported(&format!("COPY option {other}"))),
            }
        }
        if header && !csv {
            return Err(not_supported("COPY HEADER outside CSV format"));
        }
        Ok(Self {
            csv,
            header,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".to_owned() }),
            quote,
        })
    }
}

/// Where `COPY … FROM STDIN` puts its rows.
#[derive(Debug, Clone)]
pub struct CopyIn {
    pub schema: String,
    pub name: String,
    /// A raw source (a new landing file) or a table (an append).
    pub kind: RelationKind,
    /// The target's columns, and those the data holds, in order.
    pub target: SchemaRef,
    pub columns: Vec<String>,
    pub format: CopyFormat,
}

impl Session {
    pub(super) async fn copy(&mut self, stmt: Statement) -> Result<Outcome> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = stmt
        else {
            return Err(not_supported("COPY"));
        };
        let format = CopyFormat::parse(&options, &legacy_options)?;
        match (to, target) {
            (true, CopyTarget::Stdout) => {
                let query = match source {
                    CopySource::Query(q) => *q,
                    CopySource::Table {
                        table_name,
                        columns,
                    } => {
                        let list = if columns.is_empty() {
                            "*".to_owned()
                        } else {
                            columns
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let sql = format!("SELECT {list} FROM {table_name}");
                        match self.parse(&sql)?.pop() {
                            Some(Statement::Query(q)) => *q,
                            _ => return Err(not_supported(&sql)),
                        }
                    }
                };
                let Outcome::Rows { schema, stream, .. } = self
                    .execute(Statement::Query(Box::new(query)), None)
                    .await?
                else {
                    return Err(not_supported("COPY of a statement without rows"));
                };
                Ok(Outcome::CopyOut {
                    schema,
                    stream,
                    format,
                })
            }
            (false, CopyTarget::Stdin) => {
                let CopySource::Table {
                    table_name,
                    columns,
                } = source
                else {
                    return Err(not_supported("COPY (query) FROM"));
                };
                self.engine.catalog().refresh().await?;
                let (schema, name) = self.qualified(&table_name)?;
                let snap = self.engine.catalog().snapshot();
                let relation = snap
                    .relation(&schema, &name)
                    .ok_or_else(|| CatalogError::UndefinedTable(format!("{schema}.{name}")))?;
                if relation.kind == RelationKind::View {
                    return Err(CatalogError::WrongObjectType {
                        name: format!("{schema}.{name} (a view)"),
                        expected: "table or raw source",
                    }
                    .into());
                }
                let columns: Vec<String> = if columns.is_empty() {
                    relation
                        .arrow_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                } else {
                    columns.iter().map(search_path::fold).collect()
                };
                for c in &columns {
                    if relation.arrow_schema.field_with_name(c).is_err() {
                        return Err(CatalogError::UndefinedColumn {
                            table: format!("{schema}.{name}"),
                            column: c.clone(),
                        }
                        .into());
                    }
                }
                Ok(Outcome::CopyIn(CopyIn {
                    schema,
                    name,
                    kind: relation.kind,
                    target: Arc::clone(&relation.arrow_schema),
                    columns,
                    format,
                }))
            }
            (_, CopyTarget::File { .. } | CopyTarget::Program { .. }) => Err(not_supported(
                "COPY to or from a server file or program (use psql's \\copy, which goes through STDIN/STDOUT)",
            )),
            _ => Err(not_supported("this form of COPY")),
        }
    }

    /// Parses the data a client sent for `target` and writes it; returns
    /// the rows written.
    pub async fn copy_in(&mut self, target: &CopyIn, data: &[u8]) -> Result<u64> {
        let batch = parse(target, data)?;
        let rows = batch.num_rows() as u64;
        let storage = self.engine.storage();
        match target.kind {
            RelationKind::Source => {
                let mut buffer = Vec::new();
                let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), None)?;
                writer.write(&batch)?;
                writer.close()?;
                let file = format!(
                    "{}copy-{}-{:08x}.parquet",
                    layout::raw_dir(&target.name),
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    rand::random::<u32>()
                );
                storage.put_bytes(&file, Bytes::from(buffer)).await?;
                self.engine.catalog().refresh_sources().await?;
            }
            RelationKind::Table => {
                let pointer = self
                    .engine
                    .catalog()
                    .snapshot()
                    .relation(&target.schema, &target.name)
                    .and_then(|r| r.pointer.clone());
                let stream = Box::pin(RecordBatchStreamAdapter::new(
                    batch.schema(),
                    futures::stream::iter([Ok(batch)]),
                ));
                self.write_table(&target.schema, &target.name, stream, "COPY", pointer)
                    .await?;
            }
            RelationKind::View => return Err(not_supported("COPY into a view")),
            RelationKind::System => {
                return Err(crate::catalog::alter::system_table(
                    &target.schema,
                    &target.name,
                ));
            }
        }
        Ok(rows)
    }
}

/// The data as one batch of the target's schema: the columns the data
/// holds parsed from text, the others NULL.
fn parse(target: &CopyIn, data: &[u8]) -> Result<RecordBatch> {
    let text = std::str::from_utf8(data)
        .map_err(|e| copy_error(0, None, &format!("invalid UTF-8: {e}")))?;
    let lines = if target.format.csv {
        csv_records(text, &target.format)?
    } else {
        text_records(text, &target.format)?
    };
    let width = target.columns.len();
    for (line, values) in &lines {
        if values.len() != width {
            return Err(copy_error(
                *line,
                None,
                &format!("expected {width} columns, found {}", values.len()),
            ));
        }
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(target.target.fields().len());
    for field in target.target.fields() {
        let Some(i) = target.columns.iter().position(|c| c == field.name()) else {
            if !field.is_nullable() {
                return Err(copy_error(
                    0,
                    Some(field.name()),
                    "the column is NOT NULL and the data does not have it",
                ));
            }
            arrays.push(new_null_array(field.data_type(), lines.len()));
            continue;
        };
        let text: StringArray = lines.iter().map(|(_, v)| v[i].clone()).collect();
        arrays.push(typed(&text, field, &lines)?);
    }
    let schema: SchemaRef = Arc::new(Schema::new(
        target
            .target
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect::<Vec<Field>>(),
    ));
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Casts one column of text to the field's type, naming the first line
/// whose value does not convert (or is NULL in a NOT NULL column).
fn typed(
    text: &StringArray,
    field: &Field,
    lines: &[(usize, Vec<Option<String>>)],
) -> Result<ArrayRef> {
    let target = field.data_type().clone();
    let options = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let out = cast_with_options(text, &target, &options)?;
    for (row, (line, _)) in lines.iter().enumerate() {
        if text.is_null(row) {
            if !field.is_nullable() {
                return Err(copy_error(
                    *line,
                    Some(field.name()),
                    "NULL in a NOT NULL column",
                ));
            }
        } else if out.is_null(row) {
            return Err(copy_error(
                *line,
                Some(field.name()),
                &format!("invalid input for type {}: {:?}", target, text.value(row)),
            ));
        }
    }
    Ok(out)
}

fn copy_error(line: usize, column: Option<&str>, message: &str) -> Error {
    let at = match column {
        Some(c) => format!("line {line}, column {c}"),
        None => format!("line {line}"),
    };
    Error::Copy(format!("COPY: {at}: {message}; nothing was written"))
}

/// CSV records with their line numbers; an unquoted empty field (or the
/// NULL string) is NULL, a quoted empty one is an empty string.
fn csv_records(text: &str, format: &CopyFormat) -> Result<Vec<(usize, Vec<Option<String>>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(format.header)
        .delimiter(u8::try_from(format.delimiter).unwrap_or(b','))
        .quote(u8::try_from(format.quote).unwrap_or(b'"'))
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut raw = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(copy_error(line, None, &e.to_string())),
        }
        if raw.len() == 1 && raw[0].is_empty() {
            continue;
        }
        let line = raw.position().map_or(line, |p| p.line() as usize);
        let start = raw.position().map_or(0, |p| p.byte() as usize);
        let values = raw
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let value = String::from_utf8_lossy(v).into_owned();
                let quoted = field_is_quoted(text, start, i, format);
                if !quoted && value == format.null {
                    None
                } else {
                    Some(value)
                }
            })
            .collect();
        out.push((line, values));
    }
    Ok(out)
}

/// Whether field `i` of the record starting at byte `start` was quoted
/// (a quoted empty field is an empty string, not NULL, as in PostgreSQL).
fn field_is_quoted(text: &str, start: usize, i: usize, format: &CopyFormat) -> bool {
    let bytes = &text.as_bytes()[start.min(text.len())..];
    let mut field = 0;
    let mut at_field_start = true;
    let mut in_quotes = false;
    for &b in bytes {
        if at_field_start && field == i {
            return b == format.quote as u8;
        }
        at_field_start = false;
        if b == format.quote as u8 {
            in_quotes = !in_quotes;
        } else if !in_quotes && b == format.delimiter as u8 {
            field += 1;
            at_field_start = true;
        } else if !in_quotes && (b == b'\n' || b == b'\r') {
            break;
        }
    }
    false
}

/// PostgreSQL text-format records: one per line, `delimiter`-separated,
/// the NULL string (`\N`) for NULL, backslash escapes; `\.` ends the data.
fn text_records(text: &str, format: &CopyFormat) -> Result<Vec<(usize, Vec<Option<String>>)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line == "\\." {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let values = line
            .split(format.delimiter)
            .map(|v| {
                if v == format.null {
                    return Ok(None);
                }
                unescape(v)
                    .map(Some)
                    .ok_or_else(|| copy_error(n + 1, None, "bad backslash escape"))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push((n + 1, values));
    }
    Ok(out)
}

fn unescape(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            other => other,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn target(csv: bool, header: bool) -> CopyIn {
        CopyIn {
            schema: "public".into(),
            name: "crm".into(),
            kind: RelationKind::Source,
            target: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("age", DataType::Int64, true),
                Field::new("note", DataType::Utf8, true),
            ])),
            columns: vec!["id".into(), "age".into(), "note".into()],
            format: CopyFormat {
                csv,
                header,
                delimiter: if csv { ',' } else { '\t' },
                null: if csv { String::new() } else { "\\N".into() },
                quote: '"',
            },
        }
    }

    #[test]
    fn csv_with_quotes_nulls_and_empty_strings() {
        let batch = parse(
            &target(true, true),
            b"id,age,note\na,31,\"x, \"\"y\"\"\"\nb,,\"\"\nc,7,\n",
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 3);
        let note = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(note.value(0), "x, \"y\"");
        assert!(
            !note.is_null(1) && note.value(1).is_empty(),
            "quoted empty is ''"
        );
        assert!(note.is_null(2), "unquoted empty is NULL");
        assert!(batch.column(1).is_null(1));
    }

    #[test]
    fn bad_lines_are_named_and_nothing_is_parsed() {
        let err = parse(&target(true, true), b"id,age,note\na,1,x\nb,old,y\n").unwrap_err();
        assert!(err.to_string().contains("line 3, column age"), "{err}");
        let err = parse(&target(true, false), b"a,1\n").unwrap_err();
        assert!(
            err.to_string().contains("line 1: expected 3 columns"),
            "{err}"
        );
        let err = parse(&target(true, false), b",1,x\n").unwrap_err();
        assert!(
            err.to_string().contains("NULL in a NOT NULL column"),
            "{err}"
        );
    }

    #[test]
    fn text_format_unescapes_and_reads_null_markers() {
        let batch = parse(
            &target(false, false),
            b"a\t1\tone\\ttab\nb\t\\N\t\\N\n\\.\n",
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        let note = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(note.value(0), "one\ttab");
        assert!(note.is_null(1) && batch.column(1).is_null(1));
    }
}
