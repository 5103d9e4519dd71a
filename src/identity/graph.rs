//! The occurrence graph, columnar: identifier occurrences interned into
//! dense identifier ids and row-group ids, with no per-row allocation.
//!
//! An occurrence is one input row `(source, row_key, ts, id_type, id_value,
//! reject_reason)`. Identifiers are keyed by `(type, value)` and row groups
//! by `(source, row_key)`; both keep only a location `(batch, row)` into the
//! input columns, so strings are never copied. `members` holds one
//! `group << 32 | identifier` pair per occurrence.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
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

/// The rule of a rejection the model made (its `reject_reason`).
pub const MODEL_RULE: &str = "model";

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
    pub fn value_or_empty(&self, row: usize) -> &'a str {
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
    pub type_names: Vec<String>,
    pub type_rules: Vec<&'a Rule>,
    source_names: Vec<String>,
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
    pub members: Members,
}

/// The input columns the graph keeps after interning (row key and
/// identifier value, which the output quotes); the others are dropped.
pub fn kept_columns(batches: &[RecordBatch]) -> Vec<[ArrayRef; 2]> {
    batches
        .iter()
        .map(|b| [Arc::clone(b.column(1)), Arc::clone(b.column(4))])
        .collect()
}

impl<'a> Graph<'a> {
    /// Interns the occurrences in `batches` (in the resolver's input
    /// schema), then drops them: the graph keeps only `kept` (their
    /// [`kept_columns`]). Row groups and identifiers are interned on two
    /// threads.
    pub fn build(
        batches: Vec<RecordBatch>,
        kept: &'a [[ArrayRef; 2]],
        rules: &'a Rules,
    ) -> Result<Self> {
        let columns = Columns {
            row_key: kept
                .iter()
                .map(|[k, _]| Text::of(k))
                .collect::<Result<_>>()?,
            id_value: kept
                .iter()
                .map(|[_, v]| Text::of(v))
                .collect::<Result<_>>()?,
        };
        let input = Input::new(&batches, &columns)?;
        let (groups, ids) = std::thread::scope(|s| {
            let groups = s.spawn(|| GroupTable::build(&input));
            let ids = IdTable::build(&input, rules);
            (groups.join(), ids)
        });
        let groups = groups.map_err(|_| {
            DataFusionError::Internal("resolve_identities: grouping rows panicked".into())
        })??;
        let ids = ids?;
        // Members: identifiers by group (a counting sort), then each
        // group's run sorted and made distinct, compacted in place.
        let group_count = groups.loc.len();
        let mut start = vec![0u32; group_count + 1];
        for &g in &groups.of_row {
            if g != NONE {
                start[g as usize + 1] += 1;
            }
        }
        for i in 0..group_count {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut member_ids = vec![NONE; start[group_count] as usize];
        for (&g, &id) in groups.of_row.iter().zip(&ids.of_row) {
            if g != NONE {
                member_ids[fill[g as usize] as usize] = id;
                fill[g as usize] += 1;
            }
        }
        drop(fill);
        let mut out = 0usize;
        let mut from = 0usize;
        for g in 0..group_count {
            let end = start[g + 1] as usize;
            let run = &mut member_ids[from..end];
            run.sort_unstable();
            let mut kept = 0;
            for k in 0..run.len() {
                if k == 0 || run[k] != run[k - 1] {
                    run[kept] = run[k];
                    kept += 1;
                }
            }
            member_ids.copy_within(from..from + kept, out);
            start[g] = out as u32;
            out += kept;
            from = end;
        }
        start[group_count] = out as u32;
        member_ids.truncate(out);
        member_ids.shrink_to_fit();

        let evidence = ids
            .evidence_row
            .iter()
            .map(|&row| groups.of_row[row as usize])
            .collect();
        drop(input);
        drop(batches);
        Ok(Graph {
            columns,
            type_names: ids.type_names,
            type_rules: ids.type_rules,
            source_names: groups.source_names,
            id_type: ids.id_type,
            id_loc: ids.loc,
            first_ts: ids.first_ts,
            last_ts: ids.last_ts,
            evidence,
            rejected: ids.rejected,
            rejections: ids.rejections,
            ids: ids.interner,
            group_source: groups.source,
            group_loc: groups.loc,
            group_ts: groups.ts,
            members: Members {
                start,
                ids: member_ids,
            },
        })
    }

    pub fn len(&self) -> usize {
        self.id_type.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id_type.is_empty()
    }

    pub fn value(&self, id: u32) -> &'a str {
        let (b, r) = split(self.id_loc[id as usize]);
        self.columns.id_value[b].value(r)
    }

    pub fn type_name(&self, id: u32) -> &str {
        &self.type_names[self.id_type[id as usize] as usize]
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

    pub fn source(&self, group: u32) -> &str {
        &self.source_names[self.group_source[group as usize] as usize]
    }

    /// The group's row key; `""` for a row that had none.
    pub fn row_key(&self, group: u32) -> &'a str {
        let (b, r) = split(self.group_loc[group as usize]);
        self.columns.row_key[b].value_or_empty(r)
    }

    /// The id of `(type, value)`, if it occurred.
    pub fn find(&self, type_name: &str, value: &str) -> Option<u32> {
        let t = self.type_names.iter().position(|n| n == type_name)? as u16;
        let hash = hash_key(u32::from(t), value.as_bytes());
        self.ids.find(hash, |other| {
            self.id_type[other as usize] == t && self.value(other) == value
        })
    }
}

/// The identifiers of each row group, distinct, in id order (CSR form).
#[derive(Default)]
pub struct Members {
    start: Vec<u32>,
    ids: Vec<u32>,
}

impl Members {
    /// Calls `f(group, members)` for each group with members.
    pub fn for_each(&self, mut f: impl FnMut(u32, &[u32])) {
        for g in 0..self.start.len().saturating_sub(1) {
            let run = &self.ids[self.start[g] as usize..self.start[g + 1] as usize];
            if !run.is_empty() {
                f(g as u32, run);
            }
        }
    }
}

/// The input batches with the global row numbering both tables use.
struct Input<'a, 'k> {
    batches: &'a [RecordBatch],
    columns: &'a Columns<'k>,
    /// First global row of each batch.
    offsets: Vec<usize>,
    rows: usize,
}

/// One batch's columns, as the row loops read them.
struct RowColumns<'a> {
    source: Text<'a>,
    row_key: Text<'a>,
    ts: &'a TimestampMicrosecondArray,
    id_type: Text<'a>,
    id_value: Text<'a>,
    reject: Text<'a>,
}

impl<'a, 'k> Input<'a, 'k> {
    fn new(batches: &'a [RecordBatch], columns: &'a Columns<'k>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(batches.len());
        let mut rows = 0;
        for b in batches {
            if b.num_columns() != 6 {
                return Err(DataFusionError::Internal(format!(
                    "resolve_identities expects 6 columns, got {}",
                    b.num_columns()
                )));
            }
            offsets.push(rows);
            rows += b.num_rows();
        }
        if rows >= NONE as usize {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "resolve_identities takes at most {} occurrences per run, got {rows}",
                NONE - 1
            )));
        }
        Ok(Self {
            batches,
            columns,
            offsets,
            rows,
        })
    }

    /// Calls `f(global row, batch, row, columns)` for every row with an
    /// identifier (type and value present).
    fn for_each_row(&self, mut f: impl FnMut(usize, usize, usize, &RowColumns<'a>)) -> Result<()> {
        for (b, batch) in self.batches.iter().enumerate() {
            let c = RowColumns {
                source: Text::of(batch.column(0))?,
                row_key: Text::of(batch.column(1))?,
                ts: batch.column(2).as_primitive::<TimestampMicrosecondType>(),
                id_type: Text::of(batch.column(3))?,
                id_value: Text::of(batch.column(4))?,
                reject: Text::of(batch.column(5))?,
            };
            for row in 0..batch.num_rows() {
                if !c.id_type.is_null(row) && !c.id_value.is_null(row) {
                    f(self.offsets[b] + row, b, row, &c);
                }
            }
        }
        Ok(())
    }

    /// `(source, row key)` of a global row: the evidence tie-break.
    fn source_and_key(&self, global: usize) -> (&'a str, &'k str) {
        let b = self.offsets.partition_point(|&o| o <= global) - 1;
        let row = global - self.offsets[b];
        let source = Text::of(self.batches[b].column(0))
            .map(|t| t.value_or_empty(row))
            .unwrap_or("");
        (source, self.columns.row_key[b].value_or_empty(row))
    }
}

/// Row groups keyed by `(source, row_key)`.
struct GroupTable {
    source_names: Vec<String>,
    source: Vec<u16>,
    loc: Vec<u64>,
    ts: Vec<i64>,
    /// The group of each global row ([`NONE`] for rows without identifier).
    of_row: Vec<u32>,
}

impl GroupTable {
    fn build(input: &Input) -> Result<Self> {
        let n = input.rows / 2;
        let mut t = GroupTable {
            source_names: Vec::new(),
            source: Vec::with_capacity(n),
            loc: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            of_row: Vec::new(),
        };
        let mut of_row = vec![NONE; input.rows];
        let mut interner = Interner::with_capacity(n);
        input.for_each_row(|global, b, row, c| {
            let src = tag(&mut t.source_names, c.source.value_or_empty(row));
            let group = if c.row_key.is_null(row) {
                // Rows without a key link nothing: a group of their own.
                t.push(src, loc(b, row))
            } else {
                let key = c.row_key.value(row);
                let hash = hash_key(u32::from(src), key.as_bytes());
                let (group, new) = interner.intern(hash, |other| {
                    let (ob, or) = split(t.loc[other as usize]);
                    t.source[other as usize] == src && input.columns.row_key[ob].value(or) == key
                });
                if new {
                    t.push(src, loc(b, row));
                }
                group
            };
            if !c.ts.is_null(row) {
                let ts = &mut t.ts[group as usize];
                *ts = (*ts).min(c.ts.value(row));
            }
            of_row[global] = group;
        })?;
        t.of_row = of_row;
        Ok(t)
    }

    fn push(&mut self, source: u16, at: u64) -> u32 {
        self.source.push(source);
        self.loc.push(at);
        self.ts.push(NO_FIRST);
        (self.loc.len() - 1) as u32
    }
}

/// Identifiers keyed by `(type, value)`, with what is known of each.
struct IdTable<'a> {
    type_names: Vec<String>,
    type_rules: Vec<&'a Rule>,
    id_type: Vec<u16>,
    loc: Vec<u64>,
    first_ts: Vec<i64>,
    last_ts: Vec<i64>,
    /// The global row of the earliest occurrence.
    evidence_row: Vec<u32>,
    rejected: Vec<u32>,
    rejections: Vec<Rejection>,
    interner: Interner,
    /// The identifier of each global row ([`NONE`] for none).
    of_row: Vec<u32>,
}

impl<'a> IdTable<'a> {
    fn build(input: &Input, rules: &'a Rules) -> Result<Self> {
        let n = input.rows / 2;
        let mut t = IdTable {
            type_names: Vec::new(),
            type_rules: Vec::new(),
            id_type: Vec::with_capacity(n),
            loc: Vec::with_capacity(n),
            first_ts: Vec::with_capacity(n),
            last_ts: Vec::with_capacity(n),
            evidence_row: Vec::with_capacity(n),
            rejected: Vec::with_capacity(n),
            rejections: Vec::new(),
            interner: Interner::default(),
            of_row: Vec::new(),
        };
        let mut of_row = vec![NONE; input.rows];
        let mut interner = Interner::with_capacity(n);
        input.for_each_row(|global, b, row, c| {
            let ty = tag(&mut t.type_names, c.id_type.value(row));
            if ty as usize == t.type_rules.len() {
                t.type_rules.push(rules.get(&t.type_names[ty as usize]));
            }
            let value = c.id_value.value(row);
            let when = (!c.ts.is_null(row)).then(|| c.ts.value(row));
            let hash = hash_key(u32::from(ty), value.as_bytes());
            let (id, new) = interner.intern(hash, |other| {
                let (ob, or) = split(t.loc[other as usize]);
                t.id_type[other as usize] == ty && input.columns.id_value[ob].value(or) == value
            });
            let i = id as usize;
            let model_rejection = (!c.reject.is_null(row)).then(|| Rejection {
                reason: c.reject.value(row).to_owned(),
                rule: MODEL_RULE,
            });
            if new {
                t.id_type.push(ty);
                t.loc.push(loc(b, row));
                t.first_ts.push(when.unwrap_or(NO_FIRST));
                t.last_ts.push(when.unwrap_or(NO_LAST));
                t.evidence_row.push(global as u32);
                t.rejected.push(NONE);
                let rejection = model_rejection.or_else(|| {
                    t.type_rules[ty as usize]
                        .blocked(value)
                        .map(|(rule, reason)| Rejection { reason, rule })
                });
                if let Some(r) = rejection {
                    t.rejected[i] = t.rejections.len() as u32;
                    t.rejections.push(r);
                }
            } else {
                if let Some(w) = when {
                    let first = t.first_ts[i];
                    let earlier = w < first
                        || (w == first
                            && input.source_and_key(global)
                                < input.source_and_key(t.evidence_row[i] as usize));
                    if earlier {
                        t.first_ts[i] = w;
                        t.evidence_row[i] = global as u32;
                    }
                    t.last_ts[i] = t.last_ts[i].max(w);
                }
                if let Some(r) = model_rejection
                    && t.rejected[i] == NONE
                {
                    t.rejected[i] = t.rejections.len() as u32;
                    t.rejections.push(r);
                }
            }
            of_row[global] = id;
        })?;
        t.interner = interner;
        t.of_row = of_row;
        Ok(t)
    }
}

/// The small dense tag of `name` among `names` (types, sources: a handful),
/// adding it when new.
fn tag(names: &mut Vec<String>, name: &str) -> u16 {
    match names.iter().position(|n| n == name) {
        Some(i) => i as u16,
        None => {
            names.push(name.to_owned());
            (names.len() - 1) as u16
        }
    }
}
