//! Incremental resolution: after new occurrences land, only the components
//! they reach are resolved again; every other row of the previous output is
//! kept as it was.
//!
//! Why that equals a full rebuild (with the same previous output): rules
//! only look inside a component (see [`super::resolve`]), components only
//! grow as rows are appended, and the previous profiles and redirects that
//! decide profile ids lie inside the components they belong to. So the
//! work is:
//!
//! 1. [`Scope::new`]: the touched components — those of the identifiers in
//!    the new rows — and their identifiers, read from the previous output's
//!    `component_id` column.
//! 2. The caller reads the earlier occurrences the scope wants
//!    ([`Scope::wants`] on an index of hashes, or [`Scope::keep`] on a
//!    scan): those of a touched identifier, and those of a row group
//!    (`source`, `row_key`) in scope — one that reappears in the new rows,
//!    or holds a kept row. [`Scope::widen`] then adds the groups of the
//!    rows read and the component of any identifier they bring in, and the
//!    caller reads what the wider scope wants, until nothing is added.
//!    Hash collisions only ever add work this way, never lose any.
//! 3. Those occurrences and the new ones are resolved with the previous
//!    profiles of the touched components ([`Scope::previous`]).
//! 4. [`Scope::merge`]: the previous rows of untouched components, and the
//!    new result. Blocked and model-rejected values belong to no component:
//!    their one row each is merged (first and last seen, earliest evidence).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::Result;
use hashbrown::{HashMap, HashSet};

use super::graph::{MODEL_RULE, Text};
use crate::storage::deletes::{DeletedRows, NewDeletes};
use crate::storage::live_rows::{LiveBatch, LiveRows};

use super::resolve::{
    COMPONENT_COLUMN, STATUS_LINKED, STATUS_REDIRECT, STATUS_REJECTED, identifier_hash,
    output_schema, parse_component,
};

/// Columns of the resolver's input and output used here.
const IN_SOURCE: usize = 0;
const IN_ROW_KEY: usize = 1;
const IN_TYPE: usize = 3;
const IN_VALUE: usize = 4;
const OUT_PROFILE: usize = 0;
const OUT_TYPE: usize = 1;
const OUT_VALUE: usize = 2;
const OUT_STATUS: usize = 3;
const OUT_RULE: usize = 5;
const OUT_LINKED_TYPE: usize = 6;
const OUT_SOURCE: usize = 8;
const OUT_ROW_KEY: usize = 9;
const OUT_FIRST: usize = 10;
const OUT_LAST: usize = 11;

/// The previous output in plain columns, with each row's identifier hash
/// and component (None for a redirect or a row of no component), and its
/// place in the previous version's files.
pub struct PreviousOutput {
    batches: Vec<RecordBatch>,
    keys: Vec<Vec<(u64, Option<u64>)>>,
    /// Per batch: its data file (index into `files`), each row's position.
    places: Vec<(usize, Vec<u32>)>,
    files: Vec<String>,
    file_rows: Vec<u64>,
    /// Identifiers the rules block (junk values, which may occur in
    /// millions of rows): their earlier occurrences need not be read, as
    /// the rules block them again and their row is merged.
    blocked: HashMap<u64, Vec<(usize, usize)>>,
}

impl PreviousOutput {
    /// The previous version's rows must have the resolver's output columns
    /// (any string encoding).
    pub fn new(live: LiveRows) -> Result<Self> {
        let schema = output_schema();
        let mut places = Vec::with_capacity(live.batches.len());
        let batches = live
            .batches
            .into_iter()
            .map(
                |LiveBatch {
                     file,
                     positions,
                     batch: b,
                 }| {
                    places.push((file, positions));
                    let columns = schema
                        .fields()
                        .iter()
                        .zip(b.columns())
                        .map(|(f, c)| cast(c, f.data_type()))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
                },
            )
            .collect::<Result<Vec<_>>>()?;
        let keys = batches
            .iter()
            .map(|b| {
                let (t, v) = (text(b, OUT_TYPE), text(b, OUT_VALUE));
                let c = text(b, COMPONENT_COLUMN);
                (0..b.num_rows())
                    .map(|r| {
                        let component = (!c.is_null(r)).then(|| parse_component(c.value(r)));
                        (identifier_hash(t.value(r), v.value(r)), component.flatten())
                    })
                    .collect()
            })
            .collect::<Vec<Vec<(u64, Option<u64>)>>>();
        let mut blocked: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let (status, rule) = (text(batch, OUT_STATUS), text(batch, OUT_RULE));
            let linked_type = batch.column(OUT_LINKED_TYPE);
            for (r, &(id, component)) in keys[b].iter().enumerate() {
                if component.is_none()
                    && status.value(r) == STATUS_REJECTED
                    && linked_type.is_null(r)
                    && !rule.is_null(r)
                    && rule.value(r) != MODEL_RULE
                {
                    blocked.entry(id).or_default().push((b, r));
                }
            }
        }
        Ok(Self {
            batches,
            keys,
            places,
            files: live.files,
            file_rows: live.file_rows,
            blocked,
        })
    }

    /// Did the rules block this identifier?
    fn is_blocked(&self, id: u64, id_type: &str, id_value: &str) -> bool {
        self.blocked.get(&id).is_some_and(|rows| {
            rows.iter().any(|&(b, r)| {
                let batch = &self.batches[b];
                text(batch, OUT_TYPE).value(r) == id_type
                    && text(batch, OUT_VALUE).value(r) == id_value
            })
        })
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    fn each_row(&self, mut f: impl FnMut(usize, usize, u64, Option<u64>)) {
        for (b, keys) in self.keys.iter().enumerate() {
            for (r, &(id, component)) in keys.iter().enumerate() {
                f(b, r, id, component);
            }
        }
    }
}

fn text(b: &RecordBatch, column: usize) -> &StringArray {
    b.column(column).as_string::<i32>()
}

/// The text columns of an occurrence batch (input columns), read in place.
struct Occurrences<'a> {
    source: Text<'a>,
    row_key: Text<'a>,
    id_type: Text<'a>,
    id_value: Text<'a>,
}

impl<'a> Occurrences<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        Ok(Self {
            source: Text::of(batch.column(IN_SOURCE))?,
            row_key: Text::of(batch.column(IN_ROW_KEY))?,
            id_type: Text::of(batch.column(IN_TYPE))?,
            id_value: Text::of(batch.column(IN_VALUE))?,
        })
    }

    /// The identifier of row `r`; None when absent or, with `previous`,
    /// blocked there.
    fn id(&self, r: usize, previous: Option<&PreviousOutput>) -> Option<u64> {
        if self.id_type.is_null(r) || self.id_value.is_null(r) {
            return None;
        }
        let (t, v) = (self.id_type.value(r), self.id_value.value(r));
        let h = identifier_hash(t, v);
        match previous {
            Some(p) if p.is_blocked(h, t, v) => None,
            _ => Some(h),
        }
    }

    fn group(&self, r: usize) -> u64 {
        identifier_hash(
            self.source.value_or_empty(r),
            self.row_key.value_or_empty(r),
        )
    }
}

/// The touched part of the graph (see the module docs).
pub struct Scope {
    components: HashSet<u64>,
    /// Identifiers whose earlier occurrences are read.
    ids: HashSet<u64>,
    /// Row groups of the new occurrences.
    groups: HashSet<u64>,
}

impl Scope {
    /// The components the new occurrences reach.
    pub fn new(previous: &PreviousOutput, delta: &[RecordBatch]) -> Result<Self> {
        let mut scope = Self {
            components: HashSet::new(),
            ids: HashSet::new(),
            groups: HashSet::new(),
        };
        for b in delta {
            let o = Occurrences::of(b)?;
            for r in 0..b.num_rows() {
                scope.ids.extend(o.id(r, Some(previous)));
                scope.groups.insert(o.group(r));
            }
        }
        let new_ids = std::mem::take(&mut scope.ids);
        scope.add_components_of(previous, &new_ids);
        scope.ids.extend(new_ids);
        Ok(scope)
    }

    /// Adds the components of `ids` and every identifier of theirs; true
    /// when a component was added.
    fn add_components_of(&mut self, previous: &PreviousOutput, ids: &HashSet<u64>) -> bool {
        let mut added = HashSet::new();
        previous.each_row(|_, _, id, component| {
            if let Some(c) = component
                && ids.contains(&id)
                && !self.components.contains(&c)
            {
                added.insert(c);
            }
        });
        if added.is_empty() {
            return false;
        }
        previous.each_row(|_, _, id, component| {
            if component.is_some_and(|c| added.contains(&c)) {
                self.ids.insert(id);
            }
        });
        self.components.extend(added);
        true
    }

    /// Whether an earlier occurrence with this identifier hash (see
    /// [`identifier_hash`]; 0 for none) and row-group hash is read.
    pub fn wants(&self, id: u64, group: u64) -> bool {
        self.ids.contains(&id) || self.groups.contains(&group)
    }

    /// Which rows of an earlier occurrence batch to read.
    pub fn keep(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let o = Occurrences::of(batch)?;
        Ok((0..batch.num_rows())
            .map(|r| Some(self.wants(o.id(r, None).unwrap_or(0), o.group(r))))
            .collect())
    }

    /// Adds the components of identifiers in `kept` not yet in scope; true
    /// when the earlier occurrences must be read again.
    pub fn widen(&mut self, previous: &PreviousOutput, kept: &[RecordBatch]) -> Result<bool> {
        let mut outside = HashSet::new();
        // Every row of a group in scope is read: a row whose identifiers
        // link nothing (junk, invalid) still dates the group.
        let mut more_groups = false;
        for b in kept {
            let o = Occurrences::of(b)?;
            for r in 0..b.num_rows() {
                more_groups |= self.groups.insert(o.group(r));
                outside.extend(o.id(r, Some(previous)).filter(|h| !self.ids.contains(h)));
            }
        }
        let grew = !outside.is_empty() && self.add_components_of(previous, &outside);
        self.ids.extend(outside);
        Ok(grew || more_groups)
    }

    pub fn components(&self) -> usize {
        self.components.len()
    }

    /// The previous rows that decide profile ids in scope — linked rows of
    /// touched components and every redirect — as the resolver's previous
    /// input, and the profile ids used outside the scope (which a new
    /// profile must not take).
    pub fn previous(&self, previous: &PreviousOutput) -> Result<(Vec<RecordBatch>, HashSet<u64>)> {
        let mut used = HashSet::new();
        let mut out = Vec::new();
        for (b, keys) in previous.batches.iter().zip(&previous.keys) {
            let status = text(b, OUT_STATUS);
            let pid = text(b, OUT_PROFILE);
            let mask: BooleanArray = keys
                .iter()
                .enumerate()
                .map(|(r, &(_, component))| {
                    let s = status.value(r);
                    let inside = component.is_some_and(|c| self.components.contains(&c));
                    if s == STATUS_LINKED && !inside && !pid.is_null(r) {
                        used.insert(profile_key(pid.value(r)));
                    }
                    Some(s == STATUS_REDIRECT || (s == STATUS_LINKED && inside))
                })
                .collect();
            // profile_id, id_type, id_value, status, reason, linked_value,
            // first_seen_at: what `Previous::from_batches` reads.
            let projected = b.project(&[0, 1, 2, 3, 4, 7, 10])?;
            out.push(filter_record_batch(&projected, &mask)?);
        }
        Ok((out, used))
    }

    /// The new output: the previous rows outside the scope, and `resolved`
    /// (the resolution of everything in scope), with the rows of values
    /// in no component merged with their previous rows.
    pub fn merge(&self, previous: &PreviousOutput, resolved: Vec<RecordBatch>) -> Result<Merged> {
        // The rows of no component in the new result, by identifier.
        let mut fresh: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        for (b, batch) in resolved.iter().enumerate() {
            let (t, v) = (text(batch, OUT_TYPE), text(batch, OUT_VALUE));
            let status = text(batch, OUT_STATUS);
            let component = batch.column(COMPONENT_COLUMN);
            for r in 0..batch.num_rows() {
                if component.is_null(r) && status.value(r) == STATUS_REJECTED {
                    fresh
                        .entry(identifier_hash(t.value(r), v.value(r)))
                        .or_default()
                        .push((b, r));
                }
            }
        }
        let same_identifier = |a: &RecordBatch, ar: usize, b: &RecordBatch, br: usize| {
            text(a, OUT_TYPE).value(ar) == text(b, OUT_TYPE).value(br)
                && text(a, OUT_VALUE).value(ar) == text(b, OUT_VALUE).value(br)
        };
        let mut merged_with: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        let mut kept = Vec::with_capacity(previous.batches.len());
        for (pb, (batch, keys)) in previous.batches.iter().zip(&previous.keys).enumerate() {
            let status = text(batch, OUT_STATUS);
            let linked_type = batch.column(OUT_LINKED_TYPE);
            let mask: BooleanArray = keys
                .iter()
                .enumerate()
                .map(|(r, &(id, component))| {
                    let s = status.value(r);
                    let keep = match component {
                        _ if s == STATUS_REDIRECT => false,
                        Some(c) => !self.components.contains(&c),
                        None if s == STATUS_REJECTED && linked_type.is_null(r) => {
                            match fresh.get(&id).and_then(|rows| {
                                rows.iter()
                                    .find(|&&(b, rr)| same_identifier(&resolved[b], rr, batch, r))
                            }) {
                                Some(&at) => {
                                    merged_with.insert(at, (pb, r));
                                    false
                                }
                                None => true,
                            }
                        }
                        None => true,
                    };
                    Some(keep)
                })
                .collect();
            kept.push(mask);
        }
        let mut merges: Vec<Vec<(usize, (usize, usize))>> = vec![Vec::new(); resolved.len()];
        for (&(b, r), &p) in &merged_with {
            merges[b].push((r, p));
        }
        let new = resolved
            .into_iter()
            .zip(merges)
            .map(|(batch, merges)| match merges.is_empty() {
                true => Ok(batch),
                false => merge_rows(&batch, &merges, &previous.batches),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Merged { kept, new })
    }
}

/// The outcome of [`Scope::merge`]: which previous rows stay, and the new
/// rows.
pub struct Merged {
    /// Per previous batch.
    kept: Vec<BooleanArray>,
    new: Vec<RecordBatch>,
}

impl Merged {
    /// The whole new output.
    pub fn into_output(self, previous: &PreviousOutput) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(previous.batches.len() + self.new.len());
        for (batch, keep) in previous.batches.iter().zip(&self.kept) {
            out.extend(filter_kept(batch, keep)?);
        }
        out.extend(self.new);
        Ok(out)
    }

    /// The new output as changes to the previous version: the rows to add,
    /// and the previous rows to delete (by data file). A redirect the
    /// resolver states again, unchanged, is neither deleted nor added.
    pub fn into_delta(self, previous: &PreviousOutput) -> Result<(Vec<RecordBatch>, NewDeletes)> {
        let schema = output_schema();
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let redirects = |b: &RecordBatch| -> Vec<usize> {
            let status = text(b, OUT_STATUS);
            (0..b.num_rows())
                .filter(|&r| status.value(r) == STATUS_REDIRECT)
                .collect()
        };
        // Restated redirects, by their encoded row.
        let mut restated: HashMap<Vec<u8>, Vec<(usize, usize)>> = HashMap::new();
        for (b, batch) in self.new.iter().enumerate() {
            let at = redirects(batch);
            for (r, row) in at.iter().zip(encoded(&converter, batch, &at)?.iter()) {
                restated
                    .entry(row.as_ref().to_vec())
                    .or_default()
                    .push((b, *r));
            }
        }
        let mut unchanged: Vec<Vec<bool>> = self
            .new
            .iter()
            .map(|b| vec![false; b.num_rows()])
            .collect();
        let mut deleted: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (pb, (batch, keep)) in previous.batches.iter().zip(&self.kept).enumerate() {
            let (file, positions) = &previous.places[pb];
            let mut still = vec![false; batch.num_rows()];
            let at = if restated.is_empty() {
                Vec::new()
            } else {
                redirects(batch)
            };
            for (r, row) in at.iter().zip(encoded(&converter, batch, &at)?.iter()) {
                if let Some((b, nr)) = restated.get_mut(row.as_ref()).and_then(Vec::pop) {
                    unchanged[b][nr] = true;
                    still[*r] = true;
                }
            }
            let gone = deleted.entry(*file).or_default();
            for (r, &p) in positions.iter().enumerate() {
                if !keep.value(r) && !still[r] {
                    gone.push(p);
                }
            }
        }
        let mut added = Vec::with_capacity(self.new.len());
        for (batch, unchanged) in self.new.iter().zip(unchanged) {
            let mask: BooleanArray = unchanged.into_iter().map(|u| Some(!u)).collect();
            added.extend(filter_kept(batch, &mask)?);
        }
        let deletes = deleted
            .into_iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(f, rows)| {
                (
                    previous.files[f].clone(),
                    (previous.file_rows[f], DeletedRows::new(rows)),
                )
            })
            .collect();
        Ok((added, deletes))
    }
}

/// Rows `at` of `batch`, encoded for comparison.
fn encoded(converter: &RowConverter, batch: &RecordBatch, at: &[usize]) -> Result<Rows> {
    let indices = UInt32Array::from_iter_values(at.iter().map(|&r| r as u32));
    let taken = take_record_batch(batch, &indices)?;
    Ok(converter.convert_columns(taken.columns())?)
}

/// The 64-bit key of a profile id `p_<16 hex>` (other text: its hash).
pub fn profile_key(pid: &str) -> u64 {
    pid.strip_prefix("p_")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| identifier_hash("profile_id", pid))
}

/// `batch` with rows `r` replaced by their merge with previous row `p`:
/// the earlier first sighting (and its evidence row), the later last one;
/// the reason stays the previous one.
fn merge_rows(
    batch: &RecordBatch,
    merges: &[(usize, (usize, usize))],
    previous: &[RecordBatch],
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut source: Vec<Option<String>> = (0..n).map(|r| opt(text(batch, OUT_SOURCE), r)).collect();
    let mut row_key: Vec<Option<String>> =
        (0..n).map(|r| opt(text(batch, OUT_ROW_KEY), r)).collect();
    let mut reason: Vec<Option<String>> = (0..n).map(|r| opt(text(batch, 4), r)).collect();
    let ts = |b: &RecordBatch, c: usize| {
        b.column(c)
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    };
    let (first_col, last_col) = (ts(batch, OUT_FIRST), ts(batch, OUT_LAST));
    let mut first: Vec<Option<i64>> = first_col.iter().collect();
    let mut last: Vec<Option<i64>> = last_col.iter().collect();
    for &(r, (pb, pr)) in merges {
        let p = &previous[pb];
        let (pf, pl) = (ts(p, OUT_FIRST), ts(p, OUT_LAST));
        let p_first = (!pf.is_null(pr)).then(|| pf.value(pr));
        let p_last = (!pl.is_null(pr)).then(|| pl.value(pr));
        let p_source = opt(text(p, OUT_SOURCE), pr);
        let p_key = opt(text(p, OUT_ROW_KEY), pr);
        // Earliest evidence: by time, then source and row key (as resolve).
        let earlier = match (p_first, first[r]) {
            (Some(a), Some(b)) => (a, &p_source, &p_key) < (b, &source[r], &row_key[r]),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            first[r] = p_first;
            source[r] = p_source;
            row_key[r] = p_key;
        }
        last[r] = match (p_last, last[r]) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        reason[r] = opt(text(p, 4), pr);
    }
    let tz = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let strings = |v: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[4] = strings(reason);
    columns[OUT_SOURCE] = strings(source);
    columns[OUT_ROW_KEY] = strings(row_key);
    columns[OUT_FIRST] = tz(first);
    columns[OUT_LAST] = tz(last);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn opt(a: &StringArray, r: usize) -> Option<String> {
    (!a.is_null(r)).then(|| a.value(r).to_owned())
}

/// The rows of `batch` that `keep` selects, if any.
pub fn filter_kept(batch: &RecordBatch, keep: &BooleanArray) -> Result<Option<RecordBatch>> {
    let kept = filter_record_batch(batch, keep)?;
    Ok((kept.num_rows() > 0).then_some(kept))
}
