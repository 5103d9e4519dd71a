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
//!    [`Merged`] gives the whole output, or a delta: the previous rows to
//!    delete (by file and position) and the rows to add.
//!
//! The previous output may be known sparsely ([`PreviousOutput::sparse`]):
//! each row by its [`RowKey`] alone (from the graph index), the rows the
//! work needs read whole as it goes — blocked values first, then, once the
//! scope is final, its components, the redirects and the lone rejections of
//! identifiers in the occurrences read. Rows left unread are kept as they
//! are, which is why a sparse previous output can only yield a delta.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::Result;
use hashbrown::{HashMap, HashSet};

use super::graph::{MODEL_RULE, Text};
use super::hash_filter::HashFilter;
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

/// What the incremental work needs of a previous row, without its text:
/// its identifier hash, component, profile (of a linked row) and kind.
/// The graph index stores it per row ([`RowKey::to_u64s`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKey {
    pub id: u64,
    component: u64,
    profile: u64,
    flags: u8,
}

const HAS_COMPONENT: u8 = 1;
const LINKED: u8 = 2;
const REDIRECT: u8 = 4;
/// A rejection of no component and no linked value: a blocked or
/// model-rejected value, whose one row is merged with a new one.
const LONE_REJECTION: u8 = 8;
/// A lone rejection by a rule (not by the model): the rules block the
/// value, so its earlier occurrences need not be read.
const BLOCKED: u8 = 16;

impl RowKey {
    pub fn component(&self) -> Option<u64> {
        (self.flags & HAS_COMPONENT != 0).then_some(self.component)
    }

    fn profile(&self) -> Option<u64> {
        (self.flags & LINKED != 0).then_some(self.profile)
    }

    /// The keys of a batch of output rows (text columns as `Utf8`).
    pub fn of_batch(b: &RecordBatch) -> Vec<RowKey> {
        let (t, v) = (text(b, OUT_TYPE), text(b, OUT_VALUE));
        let (c, status, rule) = (
            text(b, COMPONENT_COLUMN),
            text(b, OUT_STATUS),
            text(b, OUT_RULE),
        );
        let (pid, linked_type) = (text(b, OUT_PROFILE), b.column(OUT_LINKED_TYPE));
        (0..b.num_rows())
            .map(|r| {
                let component = (!c.is_null(r))
                    .then(|| parse_component(c.value(r)))
                    .flatten();
                let s = status.value(r);
                let mut flags = 0;
                if component.is_some() {
                    flags |= HAS_COMPONENT;
                }
                let profile = if s == STATUS_LINKED && !pid.is_null(r) {
                    flags |= LINKED;
                    profile_key(pid.value(r))
                } else {
                    0
                };
                if s == STATUS_REDIRECT {
                    flags |= REDIRECT;
                }
                if component.is_none() && s == STATUS_REJECTED && linked_type.is_null(r) {
                    flags |= LONE_REJECTION;
                    if !rule.is_null(r) && rule.value(r) != MODEL_RULE {
                        flags |= BLOCKED;
                    }
                }
                RowKey {
                    id: identifier_hash(t.value(r), v.value(r)),
                    component: component.unwrap_or(0),
                    profile,
                    flags,
                }
            })
            .collect()
    }

    pub fn to_u64s(&self) -> [u64; 4] {
        [self.id, self.component, self.profile, u64::from(self.flags)]
    }

    pub fn from_u64s(id: u64, component: u64, profile: u64, flags: u64) -> Self {
        Self {
            id,
            component,
            profile,
            flags: flags as u8,
        }
    }
}

/// The rows of one data file of the previous version known only by their
/// keys, as the graph index stores them: a column of `u64` per part of
/// [`RowKey::to_u64s`] (views of the index file, never copied), and which
/// rows are live and not read yet.
pub struct UnreadFile {
    columns: [ScalarBuffer<u64>; 4],
    pending: Vec<bool>,
    count: usize,
}

impl UnreadFile {
    /// Every row of a data file but those at `deleted` (ascending).
    pub fn new(columns: [ScalarBuffer<u64>; 4], deleted: &[u32]) -> Self {
        let rows = columns[0].len();
        let mut pending = vec![true; rows];
        for &d in deleted {
            if let Some(p) = pending.get_mut(d as usize) {
                *p = false;
            }
        }
        let count = pending.iter().filter(|&&p| p).count();
        Self {
            columns,
            pending,
            count,
        }
    }

    /// How many rows the data file has, deleted ones included.
    pub fn file_rows(&self) -> usize {
        self.pending.len()
    }

    fn key(&self, r: usize) -> RowKey {
        let [id, component, profile, flags] = &self.columns;
        RowKey::from_u64s(id[r], component[r], profile[r], flags[r])
    }

    /// Each unread row's position and key.
    fn each(&self) -> impl Iterator<Item = (usize, RowKey)> + '_ {
        self.pending
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .map(|(r, _)| (r, self.key(r)))
    }
}

/// The previous output: rows read in plain columns with each row's key
/// and place in the previous version's files, and (when it was read
/// sparsely, through the graph index) the keys of the rows not read.
pub struct PreviousOutput {
    batches: Vec<RecordBatch>,
    keys: Vec<Vec<RowKey>>,
    /// Per batch: its data file (index into `files`), each row's position.
    places: Vec<(usize, Vec<u32>)>,
    unread: Vec<UnreadFile>,
    files: Vec<String>,
    file_rows: Vec<u64>,
    /// Identifiers the rules block (junk values, which may occur in
    /// millions of rows): their earlier occurrences need not be read, as
    /// the rules block them again and their row is merged.
    blocked: HashMap<u64, Vec<(usize, usize)>>,
}

impl PreviousOutput {
    /// All of the previous version's rows, read. They must have the
    /// resolver's output columns (any string encoding).
    pub fn new(live: LiveRows) -> Result<Self> {
        let mut out = Self::sparse(Vec::new(), live.files.clone());
        out.file_rows = live.file_rows.clone();
        out.add_read(live)?;
        Ok(out)
    }

    /// The previous version known by its rows' keys alone; rows are read
    /// as they are needed ([`Self::take_unread`], [`Self::add_read`]).
    /// `unread` holds the rows of each of `files`, in order.
    pub fn sparse(unread: Vec<UnreadFile>, files: Vec<String>) -> Self {
        let file_rows = unread.iter().map(|u| u.file_rows() as u64).collect();
        Self {
            batches: Vec::new(),
            keys: Vec::new(),
            places: Vec::new(),
            unread,
            files,
            file_rows,
            blocked: HashMap::new(),
        }
    }

    /// Takes the unread rows `want` picks: positions per data file, to be
    /// read and handed to [`Self::add_read`].
    pub fn take_unread(&mut self, want: impl Fn(&RowKey) -> bool) -> BTreeMap<usize, Vec<u32>> {
        let mut picks: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (file, unread) in self.unread.iter_mut().enumerate() {
            let taken: Vec<u32> = unread
                .each()
                .filter(|(_, key)| want(key))
                .map(|(r, _)| r as u32)
                .collect();
            for &r in &taken {
                unread.pending[r as usize] = false;
            }
            unread.count -= taken.len();
            if !taken.is_empty() {
                picks.insert(file, taken);
            }
        }
        picks
    }

    /// Adds rows read from the previous version's files.
    pub fn add_read(&mut self, live: LiveRows) -> Result<()> {
        for LiveBatch {
            file,
            positions,
            batch,
        } in live.batches
        {
            let batch = as_output(&batch)?;
            let keys = RowKey::of_batch(&batch);
            let b = self.batches.len();
            for (r, key) in keys.iter().enumerate() {
                if key.flags & BLOCKED != 0 {
                    self.blocked.entry(key.id).or_default().push((b, r));
                }
            }
            self.batches.push(batch);
            self.keys.push(keys);
            self.places.push((file, positions));
        }
        Ok(())
    }

    /// The rows a sparse previous output must read before the scope is
    /// known: those of blocked values.
    pub fn take_blocked(&mut self) -> BTreeMap<usize, Vec<u32>> {
        self.take_unread(|k| k.flags & BLOCKED != 0)
    }

    /// The rows the work on `scope` reads, once it is final: those of its
    /// components, every redirect, and the lone rejections of identifiers
    /// in `occurrences` (which the merge joins with their new row).
    pub fn take_scope(
        &mut self,
        scope: &Scope,
        occurrences: &[RecordBatch],
    ) -> Result<BTreeMap<usize, Vec<u32>>> {
        let mut ids = HashSet::new();
        for b in occurrences {
            let o = Occurrences::of(b)?;
            ids.extend((0..b.num_rows()).filter_map(|r| o.id(r, None)));
        }
        Ok(self.take_unread(|k| {
            k.component().is_some_and(|c| scope.components.contains(c))
                || k.flags & REDIRECT != 0
                || (k.flags & LONE_REJECTION != 0 && ids.contains(&k.id))
        }))
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
        self.batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            + self.unread.iter().map(|u| u.count).sum::<usize>()
    }

    /// Every row's identifier hash and component, read or not.
    fn each_row(&self, mut f: impl FnMut(u64, Option<u64>)) {
        for k in self.keys.iter().flatten() {
            f(k.id, k.component());
        }
        for (_, key) in self.unread.iter().flat_map(UnreadFile::each) {
            f(key.id, key.component());
        }
    }
}

/// A batch of output columns in any string encoding, as `Utf8`.
pub fn as_output(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = output_schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
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
    components: HashFilter,
    /// Identifiers whose earlier occurrences are read.
    ids: HashFilter,
    /// Row groups of the new occurrences.
    groups: HashFilter,
}

impl Scope {
    /// The components the new occurrences reach.
    pub fn new(previous: &PreviousOutput, delta: &[RecordBatch]) -> Result<Self> {
        let mut scope = Self {
            components: HashFilter::default(),
            ids: HashFilter::default(),
            groups: HashFilter::default(),
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
        scope.ids.extend(new_ids.iter());
        Ok(scope)
    }

    /// Adds the components of `ids` and every identifier of theirs; true
    /// when a component was added.
    fn add_components_of(&mut self, previous: &PreviousOutput, ids: &HashFilter) -> bool {
        let mut added = HashFilter::default();
        previous.each_row(|id, component| {
            if let Some(c) = component
                && ids.contains(id)
                && !self.components.contains(c)
            {
                added.insert(c);
            }
        });
        if added.is_empty() {
            return false;
        }
        previous.each_row(|id, component| {
            if component.is_some_and(|c| added.contains(c)) {
                self.ids.insert(id);
            }
        });
        self.components.extend(added.iter());
        true
    }

    /// Whether an earlier occurrence with this identifier hash (see
    /// [`identifier_hash`]; 0 for none) and row-group hash is read.
    pub fn wants(&self, id: u64, group: u64) -> bool {
        self.ids.contains(id) || self.groups.contains(group)
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
        let mut outside = HashFilter::default();
        // Every row of a group in scope is read: a row whose identifiers
        // link nothing (junk, invalid) still dates the group.
        let mut more_groups = false;
        for b in kept {
            let o = Occurrences::of(b)?;
            for r in 0..b.num_rows() {
                more_groups |= self.groups.insert(o.group(r));
                outside.extend(o.id(r, Some(previous)).filter(|&h| !self.ids.contains(h)));
            }
        }
        let grew = !outside.is_empty() && self.add_components_of(previous, &outside);
        self.ids.extend(outside.iter());
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
        // Unread rows lie outside the scope (its rows are read).
        used.extend(
            previous
                .unread
                .iter()
                .flat_map(UnreadFile::each)
                .filter_map(|(_, key)| key.profile()),
        );
        let mut out = Vec::new();
        for (b, keys) in previous.batches.iter().zip(&previous.keys) {
            let mask: BooleanArray = keys
                .iter()
                .map(|k| {
                    let inside = k.component().is_some_and(|c| self.components.contains(c));
                    if !inside && let Some(p) = k.profile() {
                        used.insert(p);
                    }
                    Some(k.flags & REDIRECT != 0 || (k.flags & LINKED != 0 && inside))
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
            let mask: BooleanArray = keys
                .iter()
                .enumerate()
                .map(|(r, k)| {
                    let keep = match k.component() {
                        _ if k.flags & REDIRECT != 0 => false,
                        Some(c) => !self.components.contains(c),
                        None if k.flags & LONE_REJECTION != 0 => {
                            match fresh.get(&k.id).and_then(|rows| {
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
    /// The whole new output (of a previous output read whole).
    pub fn into_output(self, previous: &PreviousOutput) -> Result<Vec<RecordBatch>> {
        if previous.unread.iter().any(|u| u.count > 0) {
            return Err(datafusion::error::DataFusionError::Internal(
                "a sparsely read previous output can only yield a delta".into(),
            ));
        }
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
        let mut unchanged: Vec<Vec<bool>> =
            self.new.iter().map(|b| vec![false; b.num_rows()]).collect();
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
