//! The occurrence graph, columnar: identifier occurrences interned into
//! dense identifier ids and row-group ids, with no per-row allocation.
//!
//! An occurrence is one input row `(source, row_key, ts, id_type, id_value,
//! reject_reason)`. Identifiers are keyed by `(type, value)` and row groups
//! by `(source, row_key)`; both keep only a location `(batch, row)` into the
//! input columns, so strings are never copied. `members` holds one
//! `group << 32 | identifier` pair per occurrence.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::error::{DataFusionError, Result};

use super::interner::{Interner, hash_key};
use super::rules::{Rule, Rules};

/// "No value" in the u32 columns.
pub const NONE: u32 = u32::MAX;
/// "No time" for first-seen (sorts last) and last-seen (sorts first).
pub const NO_FIRST: i64 = i64::MAX;
pub const NO_LAST: i64 = i64::MIN;

/// Why an identifier was rejected: the rule and a readable reason.
pub struct Rejection {
    pub reason: String,
    pub rule: &'static str,
}

/// A text column as it arrives: `Utf8`, or `Utf8View` (what Parquet scans
/// produce), read in place rather than copied by a cast.
#[derive(Clone, Copy)]
pub enum Text<'a> {
    Utf8(&'a StringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    pub fn of(array: &'a ArrayRef) -> Result<Self> {
        match array.data_type() {
            DataType::Utf8 => Ok(Self::Utf8(array.as_string::<i32>())),
            DataType::Utf8View => Ok(Self::View(array.as_string_view())),
            other => Err(DataFusionError::Internal(format!(
                "resolve_identities expects text columns, got {other}"
            ))),
        }
    }

    pub fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Utf8(a) => a.is_null(row),
            Self::View(a) => a.is_null(row),
        }
    }

    pub fn value(&self, row: usize) -> &'a str {
        match self {
            Self::Utf8(a) => a.value(row),
            Self::View(a) => a.value(row),
        }
    }

    /// The value, `""` for null.
    fn value_or_empty(&self, row: usize) -> &'a str {
        if self.is_null(row) {
            ""
        } else {
            self.value(row)
        }
    }
}

/// The input columns, one entry per batch.
struct Columns<'a> {
    row_key: Vec<Text<'a>>,
    id_value: Vec<Text<'a>>,
}

fn loc(batch: usize, row: usize) -> u64 {
    ((batch as u64) << 32) | row as u64
}

fn split(loc: u64) -> (usize, usize) {
    ((loc >> 32) as usize, (loc & 0xffff_ffff) as usize)
}

pub struct Graph<'a> {
    columns: Columns<'a>,
    pub type_names: Vec<&'a str>,
    pub type_rules: Vec<&'a Rule>,
    source_names: Vec<&'a str>,
    // Identifiers, by id.
    pub id_type: Vec<u16>,
    id_loc: Vec<u64>,
    pub first_ts: Vec<i64>,
    pub last_ts: Vec<i64>,
    /// The group of the earliest occurrence: the identifier's evidence row.
    pub evidence: Vec<u32>,
    /// Index into `rejections`, or [`NONE`].
    pub rejected: Vec<u32>,
    pub rejections: Vec<Rejection>,
    ids: Interner,
    // Row groups, by group id.
    group_source: Vec<u16>,
    group_loc: Vec<u64>,
    /// Earliest time of the group's rows ([`NO_FIRST`] if none).
    pub group_ts: Vec<i64>,
    /// Sorted, distinct `group << 32 | id` pairs.
    pub members: Vec<u64>,
}

impl<'a> Graph<'a> {
    /// Interns the occurrences in `batches` (in the resolver's input schema).
    pub fn build(batches: &'a [RecordBatch], rules: &'a Rules) -> Result<Self> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut columns = Columns {
            row_key: Vec::new(),
            id_value: Vec::new(),
        };
        for b in batches {
            if b.num_columns() != 6 {
                return Err(DataFusionError::Internal(format!(
                    "resolve_identities expects 6 columns, got {}",
                    b.num_columns()
                )));
            }
            columns.row_key.push(Text::of(b.column(1))?);
            columns.id_value.push(Text::of(b.column(4))?);
        }
        let mut g = Graph {
            columns,
            type_names: Vec::new(),
            type_rules: Vec::new(),
            source_names: Vec::new(),
            id_type: Vec::with_capacity(rows / 2),
            id_loc: Vec::with_capacity(rows / 2),
            first_ts: Vec::with_capacity(rows / 2),
            last_ts: Vec::with_capacity(rows / 2),
            evidence: Vec::with_capacity(rows / 2),
            rejected: Vec::with_capacity(rows / 2),
            rejections: Vec::new(),
            ids: Interner::default(),
            group_source: Vec::with_capacity(rows / 2),
            group_loc: Vec::with_capacity(rows / 2),
            group_ts: Vec::with_capacity(rows / 2),
            members: Vec::with_capacity(rows),
        };
        let mut groups = Interner::with_capacity(rows / 2);
        let mut ids = Interner::with_capacity(rows / 2);
        for (b, batch) in batches.iter().enumerate() {
            let source = Text::of(batch.column(0))?;
            let row_key = Text::of(batch.column(1))?;
            let ts = batch.column(2).as_primitive::<TimestampMicrosecondType>();
            let id_type = Text::of(batch.column(3))?;
            let id_value = Text::of(batch.column(4))?;
            let reject = Text::of(batch.column(5))?;
            for row in 0..batch.num_rows() {
                if id_type.is_null(row) || id_value.is_null(row) {
                    continue;
                }
                let t = tag(&mut g.type_names, id_type.value(row));
                if t as usize == g.type_rules.len() {
                    g.type_rules.push(rules.get(g.type_names[t as usize]));
                }
                let src = tag(&mut g.source_names, source.value_or_empty(row));
                let when = if ts.is_null(row) {
                    None
                } else {
                    Some(ts.value(row))
                };
                let value = id_value.value(row);

                let group = if row_key.is_null(row) {
                    // Rows without a key link nothing: a group of their own.
                    g.push_group(src, loc(b, row))
                } else {
                    let key = row_key.value(row);
                    let hash = hash_key(u32::from(src), key.as_bytes());
                    let (group, new) = groups.intern(hash, |other| {
                        g.group_source[other as usize] == src && g.row_key(other) == key
                    });
                    if new {
                        g.push_group(src, loc(b, row));
                    }
                    group
                };
                if let Some(w) = when {
                    let t = &mut g.group_ts[group as usize];
                    *t = (*t).min(w);
                }

                let hash = hash_key(u32::from(t), value.as_bytes());
                let (id, new) = ids.intern(hash, |other| {
                    g.id_type[other as usize] == t && g.value(other) == value
                });
                if new {
                    g.id_type.push(t);
                    g.id_loc.push(loc(b, row));
                    g.first_ts.push(when.unwrap_or(NO_FIRST));
                    g.last_ts.push(when.unwrap_or(NO_LAST));
                    g.evidence.push(group);
                    let blocked = g.type_rules[t as usize].blocked(value);
                    let rejection = match (reject.is_null(row), blocked) {
                        (false, _) => Some(Rejection {
                            reason: reject.value(row).to_owned(),
                            rule: "model",
                        }),
                        (true, Some((rule, reason))) => Some(Rejection { reason, rule }),
                        (true, None) => None,
                    };
                    g.rejected.push(NONE);
                    if let Some(r) = rejection {
                        g.reject(id, r);
                    }
                } else {
                    let i = id as usize;
                    if let Some(w) = when {
                        let first = g.first_ts[i];
                        let earlier = w < first
                            || (w == first
                                && (g.source_names[src as usize], row_key.value_or_empty(row))
                                    < (g.source(g.evidence[i]), g.row_key(g.evidence[i])));
                        if earlier {
                            g.first_ts[i] = w;
                            g.evidence[i] = group;
                        }
                        g.last_ts[i] = g.last_ts[i].max(w);
                    }
                    if g.rejected[i] == NONE && !reject.is_null(row) {
                        let reason = reject.value(row).to_owned();
                        g.reject(
                            id,
                            Rejection {
                                reason,
                                rule: "model",
                            },
                        );
                    }
                }
                g.members.push((u64::from(group) << 32) | u64::from(id));
            }
        }
        g.ids = ids;
        g.members.sort_unstable();
        g.members.dedup();
        Ok(g)
    }

    fn push_group(&mut self, source: u16, at: u64) -> u32 {
        self.group_source.push(source);
        self.group_loc.push(at);
        self.group_ts.push(NO_FIRST);
        (self.group_loc.len() - 1) as u32
    }

    pub fn len(&self) -> usize {
        self.id_type.len()
    }

    pub fn value(&self, id: u32) -> &'a str {
        let (b, r) = split(self.id_loc[id as usize]);
        self.columns.id_value[b].value(r)
    }

    pub fn type_name(&self, id: u32) -> &'a str {
        self.type_names[self.id_type[id as usize] as usize]
    }

    pub fn rule(&self, id: u32) -> &'a Rule {
        self.type_rules[self.id_type[id as usize] as usize]
    }

    pub fn is_live(&self, id: u32) -> bool {
        self.rejected[id as usize] == NONE
    }

    pub fn reject(&mut self, id: u32, rejection: Rejection) {
        self.rejected[id as usize] = self.rejections.len() as u32;
        self.rejections.push(rejection);
    }

    pub fn rejection(&self, id: u32) -> Option<&Rejection> {
        let r = self.rejected[id as usize];
        (r != NONE).then(|| &self.rejections[r as usize])
    }

    pub fn source(&self, group: u32) -> &'a str {
        self.source_names[self.group_source[group as usize] as usize]
    }

    /// The group's row key; `""` for a row that had none.
    pub fn row_key(&self, group: u32) -> &'a str {
        let (b, r) = split(self.group_loc[group as usize]);
        self.columns.row_key[b].value_or_empty(r)
    }

    /// The id of `(type, value)`, if it occurred.
    pub fn find(&self, type_name: &str, value: &str) -> Option<u32> {
        let t = self.type_names.iter().position(|n| *n == type_name)? as u16;
        let hash = hash_key(u32::from(t), value.as_bytes());
        self.ids.find(hash, |other| {
            self.id_type[other as usize] == t && self.value(other) == value
        })
    }

    /// Working memory beyond the input columns, in bytes.
    pub fn memory_size(&self) -> usize {
        self.ids.memory_size()
            + self.id_type.capacity() * (2 + 8 + 8 + 8 + 4 + 4)
            + self.group_loc.capacity() * (2 + 8 + 8)
            + self.members.capacity() * 8
    }
}

/// The small dense tag of `name` among `names` (types, sources: a handful),
/// adding it when new.
fn tag<'a>(names: &mut Vec<&'a str>, name: &'a str) -> u16 {
    match names.iter().position(|n| *n == name) {
        Some(i) => i as u16,
        None => {
            names.push(name);
            (names.len() - 1) as u16
        }
    }
}
