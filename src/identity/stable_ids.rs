//! Profile ids that survive reruns: what the previous run decided, and how
//! this run's sets inherit those ids (merges keep the oldest, splits give
//! the id to the largest part, new profiles get ids no profile ever had).

use std::collections::HashSet;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::error::Result;

use super::interner::{Interner, hash_key};

/// Output status of a previous row that held a profile id (see `resolve`).
const STATUS_LINKED: &str = super::resolve::STATUS_LINKED;
const STATUS_REDIRECT: &str = super::resolve::STATUS_REDIRECT;

/// What the previous run decided, kept in its own Arrow columns.
#[derive(Default)]
pub struct Previous {
    /// Per batch: profile id, id type, id value.
    columns: Vec<[StringArray; 3]>,
    /// Rows of linked identifiers: `(batch << 32 | row, previous profile)`.
    linked: Vec<(u64, u32)>,
    /// Per previous profile: a row holding its id, and when its earliest
    /// identifier was first seen.
    pid_loc: Vec<u64>,
    first_seen: Vec<i64>,
    pids: Interner,
    /// Every earlier redirect: (old, new, reason, changed_at), carried on.
    pub redirects: Vec<(String, String, String, Option<i64>)>,
    redirect_ids: HashSet<String>,
    /// Keys of profile ids in use outside what was read (an incremental
    /// run reads only the touched part): a new profile must not take one.
    pub used_elsewhere: hashbrown::HashSet<u64>,
    /// The time stamped on this run's redirects (µs).
    pub now: i64,
}

impl Previous {
    pub fn empty(now: i64) -> Self {
        Self {
            now,
            ..Self::default()
        }
    }

    /// Reads the previous output: rows `(profile_id, id_type, id_value,
    /// status, reason, linked_value, first_seen_at)`; only `linked` and
    /// `redirect` rows matter.
    pub fn from_batches(batches: &[RecordBatch], now: i64) -> Result<Self> {
        let mut p = Self::empty(now);
        for b in batches {
            let text = |i: usize| -> Result<StringArray> {
                Ok(cast(b.column(i), &DataType::Utf8)?
                    .as_string::<i32>()
                    .clone())
            };
            let [pid, id_type, id_value, status, reason] =
                [text(0)?, text(1)?, text(2)?, text(3)?, text(4)?];
            let ts = cast(
                b.column(6),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let batch = p.columns.len() as u64;
            for r in 0..b.num_rows() {
                if pid.is_null(r) || id_type.is_null(r) || id_value.is_null(r) || status.is_null(r)
                {
                    continue;
                }
                let when = (!ts.is_null(r)).then(|| ts.value(r));
                if status.value(r) == STATUS_REDIRECT {
                    let (old, new) = (id_value.value(r).to_owned(), pid.value(r).to_owned());
                    p.redirect_ids.insert(old.clone());
                    p.redirect_ids.insert(new.clone());
                    let why = if reason.is_null(r) {
                        String::new()
                    } else {
                        reason.value(r).to_owned()
                    };
                    p.redirects.push((old, new, why, when));
                    continue;
                }
                if status.value(r) != STATUS_LINKED {
                    continue;
                }
                let name = pid.value(r);
                let (index, new) = {
                    let (columns, pid_loc) = (&p.columns, &p.pid_loc);
                    p.pids.intern(hash_key(0, name.as_bytes()), |other| {
                        let (ob, or) = split(pid_loc[other as usize]);
                        let column = if ob == batch as usize {
                            &pid
                        } else {
                            &columns[ob][0]
                        };
                        column.value(or) == name
                    })
                };
                let at = (batch << 32) | r as u64;
                if new {
                    p.pid_loc.push(at);
                    p.first_seen.push(i64::MAX);
                }
                if let Some(w) = when {
                    let f = &mut p.first_seen[index as usize];
                    *f = (*f).min(w);
                }
                p.linked.push((at, index));
            }
            p.columns.push([pid, id_type, id_value]);
        }
        Ok(p)
    }

    /// Number of previous profile ids.
    pub fn len(&self) -> usize {
        self.pid_loc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pid_loc.is_empty()
    }

    /// The text of previous profile `index`.
    pub fn name(&self, index: u32) -> &str {
        let (b, r) = split(self.pid_loc[index as usize]);
        self.columns[b][0].value(r)
    }

    /// `(id_type, id_value, previous profile)` of every linked identifier.
    pub fn linked(&self) -> impl Iterator<Item = (&str, &str, u32)> {
        self.linked.iter().map(|&(at, index)| {
            let (b, r) = split(at);
            let c = &self.columns[b];
            (c[1].value(r), c[2].value(r), index)
        })
    }

    /// Did any earlier run use the profile id of this hash?
    fn was_used(&self, h: u64) -> bool {
        if self.is_empty() && self.redirect_ids.is_empty() {
            return false;
        }
        let pid = render(h);
        let pid = pid.as_str();
        self.redirect_ids.contains(pid)
            || self
                .pids
                .find(hash_key(0, pid.as_bytes()), |i| self.name(i) == pid)
                .is_some()
    }
}

fn split(at: u64) -> (usize, usize) {
    ((at >> 32) as usize, (at & 0xffff_ffff) as usize)
}

/// A change of profile id made by this run: `(old, new, reason)`.
pub type Redirect = (String, String, &'static str);

/// Profile ids for this run's sets.
///
/// - `roots`: the sets, by root id.
/// - `root_key(root)`: the set's representative `(type, value)`.
/// - `old_of`: `(previous profile, root)` for each identifier that had one.
///
/// A previous id goes to the set holding most of its identifiers (a split
/// leaves it with the largest part); a set that gets several previous ids
/// (a merge) keeps the oldest and redirects the others; a new set gets an
/// id derived from its representative that no earlier profile ever had.
/// Returns the profile id of each root (indexed like `roots`) and this
/// run's redirects.
pub fn stable_ids<'a>(
    roots: &[u32],
    root_key: impl Fn(u32) -> (&'a str, &'a str),
    mut old_of: Vec<(u32, u32)>,
    previous: &Previous,
) -> (Vec<String>, Vec<Redirect>) {
    old_of.sort_unstable();
    // (old, root, identifiers) per distinct pair, sorted by old.
    let mut counts: Vec<(u32, u32, u32)> = Vec::new();
    for &(old, root) in &old_of {
        match counts.last_mut() {
            Some(last) if last.0 == old && last.1 == root => last.2 += 1,
            _ => counts.push((old, root, 1)),
        }
    }
    drop(old_of);
    // Winner per previous id: most identifiers, then the smaller key.
    let mut won: Vec<(u32, u32)> = Vec::new(); // (root, old)
    let mut splits: Vec<(u32, u32)> = Vec::new(); // (old, root)
    let mut i = 0;
    while i < counts.len() {
        let old = counts[i].0;
        let mut j = i;
        let mut best = i;
        while j < counts.len() && counts[j].0 == old {
            let (b, c) = (counts[best], counts[j]);
            if (c.2, std::cmp::Reverse(root_key(c.1))) > (b.2, std::cmp::Reverse(root_key(b.1))) {
                best = j;
            }
            j += 1;
        }
        won.push((counts[best].1, old));
        splits.extend((i..j).filter(|&k| k != best).map(|k| (old, counts[k].1)));
        i = j;
    }
    drop(counts);
    won.sort_unstable();

    let slot_of = |root: u32| roots.binary_search(&root).expect("a root");
    let mut ids: Vec<String> = vec![String::new(); roots.len()];
    let mut redirects = Vec::new();
    let mut fresh = Vec::new();
    let mut w = 0;
    for (slot, &root) in roots.iter().enumerate() {
        let start = w;
        while w < won.len() && won[w].0 == root {
            w += 1;
        }
        if start == w {
            fresh.push(slot);
            continue;
        }
        let mut olds: Vec<u32> = won[start..w].iter().map(|&(_, old)| old).collect();
        olds.sort_by_key(|&o| (previous.first_seen[o as usize], previous.name(o)));
        let keep = previous.name(olds[0]).to_owned();
        for &other in &olds[1..] {
            redirects.push((previous.name(other).to_owned(), keep.clone(), "merge"));
        }
        ids[slot] = keep;
    }
    // A new set's id is the hash of its representative. Almost always
    // that hash is free and no other new set has it: those are assigned
    // as they come. The rest (hash collisions, ids used before) take
    // `value#n` suffixes in the order of their representatives, so the
    // outcome never depends on the input order.
    let first_hash: Vec<u64> = fresh
        .iter()
        .map(|&slot| {
            let (t, v) = root_key(roots[slot]);
            identifier_hash(t, v)
        })
        .collect();
    // Hashes two new sets share (found by sorting; usually none).
    let shared: hashbrown::HashSet<u64> = {
        let mut sorted = first_hash.clone();
        sorted.sort_unstable();
        sorted
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect()
    };
    let taken = |h: u64| previous.used_elsewhere.contains(&h) || previous.was_used(h);
    let mut contested = Vec::new();
    let mut given = Vec::with_capacity(fresh.len());
    for (&slot, &h) in fresh.iter().zip(&first_hash) {
        if !shared.contains(&h) && !taken(h) {
            ids[slot] = render(h);
            given.push(h);
        } else {
            contested.push(slot);
        }
    }
    // Ids the contested sets must not take: those just given out.
    let mut assigned: hashbrown::HashSet<u64> = if contested.is_empty() {
        hashbrown::HashSet::new()
    } else {
        given.into_iter().collect()
    };
    contested.sort_by_key(|&slot| root_key(roots[slot]));
    for slot in contested {
        let (t, v) = root_key(roots[slot]);
        let mut h = identifier_hash(t, v);
        let mut n = 1;
        while assigned.contains(&h) || taken(h) {
            h = identifier_hash(t, &format!("{v}#{n}"));
            n += 1;
        }
        assigned.insert(h);
        ids[slot] = render(h);
    }
    splits.sort_by_key(|&(old, root)| (previous.name(old), root_key(root)));
    for (old, root) in splits {
        redirects.push((
            previous.name(old).to_owned(),
            ids[slot_of(root)].clone(),
            "split",
        ));
    }
    (ids, redirects)
}

/// A stable profile id: FNV-1a of the representative identifier.
pub fn profile_id(id_type: &str, id_value: &str) -> String {
    render(identifier_hash(id_type, id_value))
}

/// FNV-1a of `(type, value)`: what profile and component ids are made of.
pub fn identifier_hash(id_type: &str, id_value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id_type.bytes().chain([0x1f]).chain(id_value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn render(hash: u64) -> String {
    format!("p_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_set_whose_id_is_taken_gets_the_next_free_one() {
        let keys = [("email", "a@x.com"), ("email", "b@x.com"), ("cookie", "c1")];
        let roots = [0u32, 1, 2];
        let root_key = |r: u32| keys[r as usize];
        let mut previous = Previous::empty(0);
        // A profile outside this run's scope already has a@x.com's id.
        previous
            .used_elsewhere
            .insert(identifier_hash("email", "a@x.com"));
        let (ids, redirects) = stable_ids(&roots, root_key, Vec::new(), &previous);
        assert!(redirects.is_empty());
        assert_eq!(ids[0], render(identifier_hash("email", "a@x.com#1")));
        assert_eq!(ids[1], render(identifier_hash("email", "b@x.com")));
        assert_eq!(ids[2], render(identifier_hash("cookie", "c1")));
        // The same sets in another order get the same ids.
        let order = [2u32, 0, 1];
        let (again, _) = stable_ids(
            &[0, 1, 2],
            |r| keys[order[r as usize] as usize],
            Vec::new(),
            &previous,
        );
        assert_eq!(again, vec![ids[2].clone(), ids[0].clone(), ids[1].clone()]);
    }
}
