//! Identity resolution over identifier occurrences.
//!
//! Input: rows `(source, row_key, ts, id_type, id_value, reject_reason)`, one
//! per identifier seen in a source row (an event, a CRM contact, an order).
//! Identifiers that occur in the same `(source, row_key)` are linked. Output:
//! one row per distinct identifier with its `profile_id`, plus one row per
//! rejection. How each identifier type is treated comes from [`Rules`].
//!
//! Rules, applied in this order:
//! 0. A row with a `reject_reason` (set by the model, e.g. "invalid email")
//!    rejects that identifier with that reason.
//! 1. **Blocked values**: the type's blocked values and pattern, and the
//!    built-in junk list (`null`, `0`, all-zero uuids, …), never link.
//! 2. **Shared identifiers**: an identifier that occurs beside two different
//!    values of a type limited to one per profile (by default `user_id`) — a
//!    family iPad, a shared cookie — is rejected whole, with both as evidence.
//! 3. **Super-connectors**: an identifier linked to more distinct identifiers
//!    than its type's `max_links` (a kiosk, a `team@` inbox) is quarantined.
//! 4. Remaining links are applied strongest first (by the priority of their
//!    weaker end), then in event-time order (ties broken by source, row key
//!    and value, so the input order never matters). A link that would give a
//!    profile more values of a type than `max_per_profile`, or than
//!    `max_per_window` first seen within `window_days`, is rejected and
//!    reported with the row that carried it; the profile itself stays.
//!
//! Profile ids are derived from the profile's representative identifier (its
//! value of a one-per-profile type if it has one, else its earliest-seen
//! identifier), so the same input gives the same ids on every run.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::error::{DataFusionError, Result};

use super::rules::{Rule, Rules};
use super::union_find::UnionFind;

/// Column order the resolver expects (callers cast and project to it).
pub const INPUT_COLUMNS: [&str; 6] = [
    "source",
    "row_key",
    "ts",
    "id_type",
    "id_value",
    "reject_reason",
];

pub const STATUS_LINKED: &str = "linked";
pub const STATUS_REJECTED: &str = "rejected";
/// A link that was applied: with the linked identifier and the evidence row.
/// The applied links of a profile form a tree, so the chain that joins two
/// of its identifiers is unique (see `explain_identity`).
pub const STATUS_LINK: &str = "link";
/// A profile id that changed: `id_value` is the old id, `profile_id` the
/// new one, `reason` is `merge` or `split`, `first_seen_at` when.
pub const STATUS_REDIRECT: &str = "redirect";

const DAY_US: i64 = 86_400_000_000;

pub fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, true),
        Field::new("row_key", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("id_type", DataType::Utf8, true),
        Field::new("id_value", DataType::Utf8, true),
        Field::new("reject_reason", DataType::Utf8, true),
    ]))
}

pub fn output_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("rule", DataType::Utf8, true),
        Field::new("linked_type", DataType::Utf8, true),
        Field::new("linked_value", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("row_key", DataType::Utf8, true),
        Field::new("first_seen_at", ts.clone(), true),
        Field::new("last_seen_at", ts, true),
    ]))
}

/// What we know of one distinct identifier.
struct IdInfo<'a> {
    type_idx: u16,
    value: &'a str,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Evidence: the earliest row it was seen in.
    source: &'a str,
    row_key: &'a str,
    rejected: Option<Rejection>,
}

struct Rejection {
    reason: String,
    rule: &'static str,
}

struct Group<'a> {
    source: &'a str,
    row_key: &'a str,
    ts: Option<i64>,
}

struct LinkRejection {
    id: u32,
    linked: u32,
    group: u32,
    reason: String,
    rule: &'static str,
}

/// Resolves identities; `batches` must have [`input_schema`].
pub fn resolve(batches: &[RecordBatch], rules: &Rules, previous: &Previous) -> Result<RecordBatch> {
    let mut type_names: Vec<&str> = Vec::new();
    let mut type_rules: Vec<&Rule> = Vec::new();
    let mut type_index: HashMap<&str, u16> = HashMap::new();
    let mut ids: Vec<IdInfo> = Vec::new();
    let mut id_index: HashMap<(u16, &str), u32> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: HashMap<(&str, &str), u32> = HashMap::new();
    let mut members: Vec<(u32, u32)> = Vec::new();

    for batch in batches {
        if batch.num_columns() != INPUT_COLUMNS.len() {
            return Err(DataFusionError::Internal(format!(
                "resolve_identities expects {} columns, got {}",
                INPUT_COLUMNS.len(),
                batch.num_columns()
            )));
        }
        let source = batch.column(0).as_string::<i32>();
        let row_key = batch.column(1).as_string::<i32>();
        let ts = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        let id_type = batch.column(3).as_string::<i32>();
        let id_value = batch.column(4).as_string::<i32>();
        let reject = batch.column(5).as_string::<i32>();
        for row in 0..batch.num_rows() {
            if id_type.is_null(row) || id_value.is_null(row) {
                continue;
            }
            let t = id_type.value(row);
            let v = id_value.value(row);
            let src = if source.is_null(row) {
                ""
            } else {
                source.value(row)
            };
            let key = (!row_key.is_null(row)).then(|| row_key.value(row));
            let when = (!ts.is_null(row)).then(|| ts.value(row));
            let model_rejection = (!reject.is_null(row)).then(|| Rejection {
                reason: reject.value(row).to_owned(),
                rule: "model",
            });

            let type_idx = *type_index.entry(t).or_insert_with(|| {
                type_names.push(t);
                type_rules.push(rules.get(t));
                (type_names.len() - 1) as u16
            });
            let id = match id_index.get(&(type_idx, v)) {
                Some(&id) => {
                    let info = &mut ids[id as usize];
                    if let Some(w) = when {
                        let earlier = info.first_ts.is_none_or(|f| {
                            (w, src, key.unwrap_or("")) < (f, info.source, info.row_key)
                        });
                        if earlier {
                            info.first_ts = Some(w);
                            info.source = src;
                            info.row_key = key.unwrap_or("");
                        }
                        info.last_ts = Some(info.last_ts.map_or(w, |l| l.max(w)));
                    }
                    if info.rejected.is_none() {
                        info.rejected = model_rejection;
                    }
                    id
                }
                None => {
                    let id = ids.len() as u32;
                    let rejected = model_rejection.or_else(|| {
                        type_rules[type_idx as usize]
                            .blocked(v)
                            .map(|(rule, reason)| Rejection { reason, rule })
                    });
                    ids.push(IdInfo {
                        type_idx,
                        value: v,
                        first_ts: when,
                        last_ts: when,
                        source: src,
                        row_key: key.unwrap_or(""),
                        rejected,
                    });
                    id_index.insert((type_idx, v), id);
                    id
                }
            };
            // Rows without a key link nothing: each is a group of its own.
            let group = match key {
                Some(k) => *group_index.entry((src, k)).or_insert_with(|| {
                    groups.push(Group {
                        source: src,
                        row_key: k,
                        ts: when,
                    });
                    (groups.len() - 1) as u32
                }),
                None => {
                    groups.push(Group {
                        source: src,
                        row_key: "",
                        ts: when,
                    });
                    (groups.len() - 1) as u32
                }
            };
            let g = &mut groups[group as usize];
            if let Some(w) = when {
                g.ts = Some(g.ts.map_or(w, |t| t.min(w)));
            }
            members.push((group, id));
        }
    }
    drop(id_index);
    drop(group_index);

    let type_of: Vec<u16> = ids.iter().map(|i| i.type_idx).collect();
    let rule_of = |id: u32| type_rules[type_of[id as usize] as usize];
    let exclusive: Vec<bool> = type_rules
        .iter()
        .map(|r| r.max_per_profile == Some(1))
        .collect();
    members.sort_unstable();
    members.dedup();

    // Rule 2: identifiers seen beside two different one-per-profile values.
    let mut anchor_seen: Vec<Option<u32>> = vec![None; ids.len()];
    for_each_group(&members, |_, group_members| {
        let anchors: Vec<u32> = group_members
            .iter()
            .copied()
            .filter(|&m| {
                exclusive[ids[m as usize].type_idx as usize] && ids[m as usize].rejected.is_none()
            })
            .collect();
        for a in anchors {
            for &x in group_members {
                let info = &ids[x as usize];
                if info.rejected.is_some() || info.type_idx == ids[a as usize].type_idx {
                    continue;
                }
                match anchor_seen[x as usize] {
                    None => anchor_seen[x as usize] = Some(a),
                    Some(prev)
                        if prev != a && ids[prev as usize].type_idx == ids[a as usize].type_idx =>
                    {
                        let (p, q) = (&ids[prev as usize], &ids[a as usize]);
                        let reason = format!(
                            "shared identifier: seen with {} '{}' and {} '{}'",
                            type_names[p.type_idx as usize],
                            p.value,
                            type_names[q.type_idx as usize],
                            q.value
                        );
                        ids[x as usize].rejected = Some(Rejection {
                            reason,
                            rule: "shared_identifier",
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    });

    // Rule 3: super-connectors, by their number of distinct neighbours.
    if type_rules.iter().any(|r| r.max_links.is_some()) {
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for_each_group(&members, |_, group_members| {
            for &a in group_members {
                if rule_of(a).max_links.is_none() || ids[a as usize].rejected.is_some() {
                    continue;
                }
                for &b in group_members {
                    if a != b && ids[b as usize].rejected.is_none() {
                        pairs.push((a, b));
                    }
                }
            }
        });
        pairs.sort_unstable();
        pairs.dedup();
        let mut i = 0;
        while i < pairs.len() {
            let a = pairs[i].0;
            let mut j = i;
            while j < pairs.len() && pairs[j].0 == a {
                j += 1;
            }
            if let Some(max) = rule_of(a).max_links
                && j - i > max
            {
                ids[a as usize].rejected = Some(Rejection {
                    reason: format!(
                        "super-connector: linked to {} identifiers (max_links {max})",
                        j - i
                    ),
                    rule: "max_links",
                });
            }
            i = j;
        }
    }

    // Links: a star around the strongest member of each row.
    let mut edges: Vec<(u32, u32, u32)> = Vec::new(); // (group, hub, other)
    for_each_group(&members, |group, group_members| {
        let live = group_members
            .iter()
            .copied()
            .filter(|&m| ids[m as usize].rejected.is_none());
        let hub = live.clone().min_by_key(|&m| {
            (
                rule_of(m).priority,
                type_names[ids[m as usize].type_idx as usize],
                ids[m as usize].value,
            )
        });
        if let Some(hub) = hub {
            for x in live {
                if x != hub {
                    edges.push((group, hub, x));
                }
            }
        }
    });
    let edge_key = |e: &(u32, u32, u32)| {
        let g = &groups[e.0 as usize];
        (
            rule_of(e.1).priority.max(rule_of(e.2).priority),
            g.ts.unwrap_or(i64::MAX),
            g.source,
            g.row_key,
            ids[e.2 as usize].value,
        )
    };
    edges.sort_by(|a, b| edge_key(a).cmp(&edge_key(b)));

    // Rule 4: union strongest first, within every type's limits.
    let mut uf = UnionFind::new(ids.len());
    let limited: Vec<bool> = type_rules
        .iter()
        .map(|r| r.max_per_profile.is_some() || r.window.is_some())
        .collect();
    // Members of limited types, kept at each set's root.
    let mut held: Vec<Vec<u32>> = ids
        .iter()
        .enumerate()
        .map(|(i, info)| {
            if limited[info.type_idx as usize] && info.rejected.is_none() {
                vec![i as u32]
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut link_rejections = Vec::new();
    let mut applied: Vec<(u32, u32, u32)> = Vec::new();
    for &(group, hub, x) in &edges {
        let (rh, rx) = (uf.find(hub), uf.find(x));
        if rh == rx {
            continue;
        }
        let violation = limit_violation(
            &held[rh as usize],
            &held[rx as usize],
            &ids,
            &type_rules,
            &type_names,
        );
        match violation {
            Some((rule, reason)) => link_rejections.push(LinkRejection {
                id: x,
                linked: hub,
                group,
                reason,
                rule,
            }),
            None => {
                applied.push((group, hub, x));
                let root = uf.union(rh, rx);
                let other = if root == rh { rx } else { rh };
                let moved = std::mem::take(&mut held[other as usize]);
                held[root as usize].extend(moved);
            }
        }
    }

    // Representatives: the strongest one-per-profile value, else the
    // earliest-seen identifier.
    let mut representative: Vec<Option<u32>> = vec![None; ids.len()];
    let rank = |i: u32| {
        let info = &ids[i as usize];
        let ex = exclusive[info.type_idx as usize];
        (
            !ex,
            if ex { rule_of(i).priority } else { 0 },
            info.first_ts.unwrap_or(i64::MAX),
            type_names[info.type_idx as usize],
            info.value,
        )
    };
    for (i, info) in ids.iter().enumerate() {
        if info.rejected.is_some() {
            continue;
        }
        let root = uf.find(i as u32) as usize;
        let better = representative[root].is_none_or(|r| rank(i as u32) < rank(r));
        if better {
            representative[root] = Some(i as u32);
        }
    }

    // Profile ids: stable against the previous run (see `stable_ids`).
    let mut roots: Vec<u32> = Vec::new();
    for (i, info) in ids.iter().enumerate() {
        if info.rejected.is_none() && uf.find(i as u32) == i as u32 {
            roots.push(i as u32);
        }
    }
    let root_key = |r: u32| {
        let rep = &ids[representative[r as usize].unwrap_or(r) as usize];
        (type_names[rep.type_idx as usize], rep.value)
    };
    let mut old_of: Vec<(u32, &str)> = Vec::new(); // (root, previous profile id)
    for (i, info) in ids.iter().enumerate() {
        if info.rejected.is_none()
            && let Some(old) = previous.profile_of(type_names[info.type_idx as usize], info.value)
        {
            old_of.push((uf.find(i as u32), old));
        }
    }
    let (pid_of_root, new_redirects) = stable_ids(&roots, &root_key, &old_of, previous);

    let mut out = OutputBuilder::new(
        ids.len()
            + link_rejections.len()
            + applied.len()
            + previous.redirects.len()
            + new_redirects.len(),
    );
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&ids[a as usize], &ids[b as usize]);
        (type_names[x.type_idx as usize], x.value).cmp(&(type_names[y.type_idx as usize], y.value))
    });
    for i in order {
        let info = &ids[i as usize];
        let type_name = type_names[info.type_idx as usize];
        match &info.rejected {
            Some(rej) => out.push(Row {
                profile_id: None,
                id_type: type_name,
                id_value: info.value,
                status: STATUS_REJECTED,
                reason: Some(&rej.reason),
                rule: Some(rej.rule),
                linked: None,
                source: info.source,
                row_key: info.row_key,
                first: info.first_ts,
                last: info.last_ts,
            }),
            None => {
                let pid = &pid_of_root[&uf.find(i)];
                out.push(Row {
                    profile_id: Some(pid),
                    id_type: type_name,
                    id_value: info.value,
                    status: STATUS_LINKED,
                    reason: None,
                    rule: None,
                    linked: None,
                    source: info.source,
                    row_key: info.row_key,
                    first: info.first_ts,
                    last: info.last_ts,
                });
            }
        }
    }
    for &(group, hub, x) in &applied {
        let (xi, hi, g) = (
            &ids[x as usize],
            &ids[hub as usize],
            &groups[group as usize],
        );
        let pid = &pid_of_root[&uf.find(x)];
        out.push(Row {
            profile_id: Some(pid),
            id_type: type_names[xi.type_idx as usize],
            id_value: xi.value,
            status: STATUS_LINK,
            reason: None,
            rule: None,
            linked: Some((type_names[hi.type_idx as usize], hi.value)),
            source: g.source,
            row_key: g.row_key,
            first: g.ts,
            last: g.ts,
        });
    }
    for rej in &link_rejections {
        let (x, hub, g) = (
            &ids[rej.id as usize],
            &ids[rej.linked as usize],
            &groups[rej.group as usize],
        );
        out.push(Row {
            profile_id: None,
            id_type: type_names[x.type_idx as usize],
            id_value: x.value,
            status: STATUS_REJECTED,
            reason: Some(&rej.reason),
            rule: Some(rej.rule),
            linked: Some((type_names[hub.type_idx as usize], hub.value)),
            source: g.source,
            row_key: g.row_key,
            first: g.ts,
            last: g.ts,
        });
    }
    for (old, new, reason, at) in previous
        .redirects
        .iter()
        .map(|(o, n, r, t)| (o.as_str(), n.as_str(), r.as_str(), *t))
        .chain(
            new_redirects
                .iter()
                .map(|(o, n, r)| (*o, n.as_str(), *r, Some(previous.now))),
        )
    {
        out.push(Row {
            profile_id: Some(new),
            id_type: "profile_id",
            id_value: old,
            status: STATUS_REDIRECT,
            reason: Some(reason),
            rule: None,
            linked: None,
            source: "",
            row_key: "",
            first: at,
            last: at,
        });
    }
    out.finish()
}

/// What the previous run decided, so profile ids survive reruns.
#[derive(Debug, Default)]
pub struct Previous {
    /// id_type → id_value → profile id.
    profiles: HashMap<String, HashMap<String, String>>,
    /// profile id → when its earliest identifier was first seen.
    first_seen: HashMap<String, i64>,
    /// Every earlier redirect: (old, new, reason, changed_at), carried on.
    pub redirects: Vec<(String, String, String, Option<i64>)>,
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
    /// status, reason, linked_value, first_seen_at)` with status `linked`
    /// or `redirect`.
    pub fn from_batches(batches: &[RecordBatch], now: i64) -> Result<Self> {
        let mut p = Self::empty(now);
        for b in batches {
            let text = |i: usize| datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8);
            let cols = (0..6)
                .map(text)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let cols: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
            let ts = datafusion::arrow::compute::cast(
                b.column(6),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let get =
                |c: usize, r: usize| (!cols[c].is_null(r)).then(|| cols[c].value(r).to_owned());
            for r in 0..b.num_rows() {
                let (Some(pid), Some(t), Some(v), Some(status)) =
                    (get(0, r), get(1, r), get(2, r), get(3, r))
                else {
                    continue;
                };
                let when = (!ts.is_null(r)).then(|| ts.value(r));
                if status == STATUS_REDIRECT {
                    p.redirects
                        .push((v, pid, get(4, r).unwrap_or_default(), when));
                    continue;
                }
                if let Some(w) = when {
                    let e = p.first_seen.entry(pid.clone()).or_insert(w);
                    *e = (*e).min(w);
                }
                p.profiles.entry(t).or_default().insert(v, pid);
            }
        }
        Ok(p)
    }

    fn profile_of(&self, id_type: &str, value: &str) -> Option<&str> {
        self.profiles.get(id_type)?.get(value).map(String::as_str)
    }
}

/// A change of profile id made by this run: `(old, new, reason)`.
type Redirect<'a> = (&'a str, String, &'static str);

/// Profile ids for this run's sets (by root), kept from the previous run:
/// a previous id goes to the set holding most of its identifiers (a split
/// leaves it with the largest part); a set that gets several previous ids
/// (a merge) keeps the oldest and redirects the others; a new set gets an
/// id derived from its representative that no earlier profile ever had.
/// Returns the ids and this run's redirects `(old, new, reason)`.
fn stable_ids<'a>(
    roots: &[u32],
    root_key: &dyn Fn(u32) -> (&'a str, &'a str),
    old_of: &[(u32, &'a str)],
    previous: &'a Previous,
) -> (HashMap<u32, String>, Vec<Redirect<'a>>) {
    let mut counts: HashMap<(&str, u32), u32> = HashMap::new();
    for &(root, old) in old_of {
        *counts.entry((old, root)).or_default() += 1;
    }
    // Winner per previous id: most identifiers, then the smaller key.
    let mut winner: HashMap<&str, (u32, u32)> = HashMap::new();
    for (&(old, root), &n) in &counts {
        let better = winner.get(old).is_none_or(|&(r, m)| {
            (n, std::cmp::Reverse(root_key(root))) > (m, std::cmp::Reverse(root_key(r)))
        });
        if better {
            winner.insert(old, (root, n));
        }
    }
    let mut won: HashMap<u32, Vec<&str>> = HashMap::new();
    for (&old, &(root, _)) in &winner {
        won.entry(root).or_default().push(old);
    }
    let mut taken: std::collections::HashSet<String> = previous
        .profiles
        .values()
        .flat_map(|m| m.values().cloned())
        .collect();
    taken.extend(
        previous
            .redirects
            .iter()
            .flat_map(|(o, n, _, _)| [o.clone(), n.clone()]),
    );
    let mut ids: HashMap<u32, String> = HashMap::new();
    let mut redirects = Vec::new();
    let mut fresh = Vec::new();
    for &root in roots {
        match won.get_mut(&root) {
            Some(olds) => {
                olds.sort_by_key(|o| {
                    (previous.first_seen.get(*o).copied().unwrap_or(i64::MAX), *o)
                });
                for other in &olds[1..] {
                    redirects.push((*other, olds[0].to_owned(), "merge"));
                }
                ids.insert(root, olds[0].to_owned());
            }
            None => fresh.push(root),
        }
    }
    fresh.sort_by_key(|&r| root_key(r));
    for root in fresh {
        let (t, v) = root_key(root);
        let mut pid = profile_id(t, v);
        let mut n = 1;
        while taken.contains(&pid) {
            pid = profile_id(t, &format!("{v}#{n}"));
            n += 1;
        }
        taken.insert(pid.clone());
        ids.insert(root, pid);
    }
    let mut splits: Vec<(&str, u32)> = counts
        .keys()
        .filter(|(old, root)| winner.get(old).is_some_and(|(w, _)| w != root))
        .map(|&(old, root)| (old, root))
        .collect();
    splits.sort_by_key(|&(old, root)| (old, root_key(root)));
    for (old, root) in splits {
        redirects.push((old, ids[&root].clone(), "split"));
    }
    (ids, redirects)
}

/// Would joining two sets holding `a` and `b` (members of limited types)
/// break a limit? Returns the rule and a reason.
fn limit_violation(
    a: &[u32],
    b: &[u32],
    ids: &[IdInfo],
    rules: &[&Rule],
    names: &[&str],
) -> Option<(&'static str, String)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut types: Vec<u16> = a
        .iter()
        .chain(b)
        .map(|&m| ids[m as usize].type_idx)
        .collect();
    types.sort_unstable();
    types.dedup();
    for t in types {
        let rule = rules[t as usize];
        let of_type = |s: &[u32]| {
            s.iter()
                .copied()
                .filter(|&m| ids[m as usize].type_idx == t)
                .collect::<Vec<_>>()
        };
        let (in_a, in_b) = (of_type(a), of_type(b));
        if in_a.is_empty() || in_b.is_empty() {
            continue;
        }
        let name = names[t as usize];
        if let Some(max) = rule.max_per_profile
            && in_a.len() + in_b.len() > max
        {
            let reason = if max == 1 {
                format!(
                    "link would merge {name} '{}' with {name} '{}'",
                    ids[in_a[0] as usize].value, ids[in_b[0] as usize].value
                )
            } else {
                format!(
                    "link would give the profile {} {name} values (max_per_profile {max})",
                    in_a.len() + in_b.len()
                )
            };
            let rule_name = if max == 1 {
                "one_exclusive_per_profile"
            } else {
                "max_per_profile"
            };
            return Some((rule_name, reason));
        }
        if let Some((max, days)) = rule.window {
            let mut times: Vec<i64> = in_a
                .iter()
                .chain(&in_b)
                .filter_map(|&m| ids[m as usize].first_ts)
                .collect();
            times.sort_unstable();
            let span = days * DAY_US;
            let crowded = (0..times.len()).any(|i| {
                times[i..]
                    .iter()
                    .take_while(|&&t| t - times[i] < span)
                    .count()
                    > max
            });
            if crowded {
                return Some((
                    "max_per_window",
                    format!(
                        "link would give the profile more than {max} {name} values first seen within {days} days"
                    ),
                ));
            }
        }
    }
    None
}

/// Calls `f(group, members)` for each run of equal groups in sorted pairs.
fn for_each_group(members: &[(u32, u32)], mut f: impl FnMut(u32, &[u32])) {
    let mut buf = Vec::new();
    let mut start = 0;
    while start < members.len() {
        let group = members[start].0;
        let mut end = start;
        buf.clear();
        while end < members.len() && members[end].0 == group {
            buf.push(members[end].1);
            end += 1;
        }
        f(group, &buf);
        start = end;
    }
}

/// A stable profile id: FNV-1a of the representative identifier.
pub fn profile_id(id_type: &str, id_value: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id_type.bytes().chain([0x1f]).chain(id_value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("p_{h:016x}")
}

struct Row<'r> {
    profile_id: Option<&'r str>,
    id_type: &'r str,
    id_value: &'r str,
    status: &'static str,
    reason: Option<&'r str>,
    rule: Option<&'static str>,
    linked: Option<(&'r str, &'r str)>,
    source: &'r str,
    row_key: &'r str,
    first: Option<i64>,
    last: Option<i64>,
}

struct OutputBuilder {
    strings: Vec<StringBuilder>,
    first: TimestampMicrosecondBuilder,
    last: TimestampMicrosecondBuilder,
}

impl OutputBuilder {
    fn new(capacity: usize) -> Self {
        Self {
            strings: (0..10)
                .map(|_| StringBuilder::with_capacity(capacity, capacity * 8))
                .collect(),
            first: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            last: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
        }
    }

    fn push(&mut self, r: Row) {
        let s = &mut self.strings;
        s[0].append_option(r.profile_id);
        s[1].append_value(r.id_type);
        s[2].append_value(r.id_value);
        s[3].append_value(r.status);
        s[4].append_option(r.reason);
        s[5].append_option(r.rule);
        s[6].append_option(r.linked.map(|l| l.0));
        s[7].append_option(r.linked.map(|l| l.1));
        s[8].append_option((!r.source.is_empty()).then_some(r.source));
        s[9].append_option((!r.row_key.is_empty()).then_some(r.row_key));
        self.first.append_option(r.first);
        self.last.append_option(r.last);
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = self
            .strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(self.first.finish()));
        columns.push(Arc::new(self.last.finish()));
        Ok(RecordBatch::try_new(output_schema(), columns)?)
    }
}

/// Test helper: occurrences from tuples `(source, row_key, ts, type, value)`.
#[cfg(test)]
pub(crate) fn occurrences(rows: &[(&str, &str, i64, &str, &str)]) -> RecordBatch {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray, new_null_array};
    type Row<'a> = (&'a str, &'a str, i64, &'a str, &'a str);
    let col = |f: for<'a> fn(&Row<'a>) -> &'a str| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_new(
        input_schema(),
        vec![
            col(|r| r.0),
            col(|r| r.1),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            col(|r| r.3),
            col(|r| r.4),
            new_null_array(&DataType::Utf8, rows.len()),
        ],
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (id_type, id_value) → profile_id or "REJECTED".
    fn run(rows: &[(&str, &str, i64, &str, &str)]) -> HashMap<(String, String), String> {
        let out = resolve(&[occurrences(rows)], &Rules::builtin(), &Previous::empty(0)).unwrap();
        let pid = out.column(0).as_string::<i32>();
        let t = out.column(1).as_string::<i32>();
        let v = out.column(2).as_string::<i32>();
        let status = out.column(3).as_string::<i32>();
        let mut m = HashMap::new();
        for i in 0..out.num_rows() {
            if status.value(i) == STATUS_LINKED {
                m.insert(
                    (t.value(i).to_owned(), v.value(i).to_owned()),
                    pid.value(i).to_owned(),
                );
            } else if out.column(6).is_null(i) {
                m.insert(
                    (t.value(i).to_owned(), v.value(i).to_owned()),
                    "REJECTED".to_owned(),
                );
            }
        }
        m
    }

    fn key(t: &str, v: &str) -> (String, String) {
        (t.to_owned(), v.to_owned())
    }

    #[test]
    fn links_cookie_login_and_email_transitively() {
        let m = run(&[
            ("events", "e1", 1, "anonymous_id", "c1"),
            ("events", "e1", 1, "user_id", "u1"),
            ("events", "e2", 2, "anonymous_id", "c2"),
            ("events", "e2", 2, "email", "ana@x.com"),
            ("crm", "k1", 3, "email", "ana@x.com"),
            ("crm", "k1", 3, "user_id", "u1"),
            ("events", "e3", 4, "anonymous_id", "c3"),
        ]);
        assert_eq!(m[&key("anonymous_id", "c1")], m[&key("anonymous_id", "c2")]);
        assert_eq!(m[&key("user_id", "u1")], profile_id("user_id", "u1"));
        assert_ne!(m[&key("anonymous_id", "c3")], m[&key("user_id", "u1")]);
    }

    #[test]
    fn junk_values_link_nothing() {
        let m = run(&[
            ("events", "e1", 1, "anonymous_id", "null"),
            ("events", "e1", 1, "user_id", "u1"),
            ("events", "e2", 2, "anonymous_id", "null"),
            ("events", "e2", 2, "user_id", "u2"),
        ]);
        assert_eq!(m[&key("anonymous_id", "null")], "REJECTED");
        assert_ne!(m[&key("user_id", "u1")], m[&key("user_id", "u2")]);
    }

    #[test]
    fn shared_device_is_rejected_not_merged() {
        let m = run(&[
            ("events", "e1", 1, "device_id", "ipad"),
            ("events", "e1", 1, "user_id", "u1"),
            ("events", "e2", 2, "device_id", "ipad"),
            ("events", "e2", 2, "user_id", "u2"),
        ]);
        assert_eq!(m[&key("device_id", "ipad")], "REJECTED");
        assert_ne!(m[&key("user_id", "u1")], m[&key("user_id", "u2")]);
    }

    #[test]
    fn transitive_merge_of_two_user_ids_is_cut_and_reported() {
        let rows = [
            ("crm", "k1", 1, "email", "b@x.com"),
            ("crm", "k1", 1, "user_id", "u2"),
            ("events", "e1", 2, "anonymous_id", "c1"),
            ("events", "e1", 2, "user_id", "u1"),
            ("events", "e2", 3, "anonymous_id", "c1"),
            ("events", "e2", 3, "email", "b@x.com"),
        ];
        let m = run(&rows);
        assert_ne!(m[&key("user_id", "u1")], m[&key("user_id", "u2")]);
        let out = resolve(
            &[occurrences(&rows)],
            &Rules::builtin(),
            &Previous::empty(0),
        )
        .unwrap();
        let rule = out.column(5).as_string::<i32>();
        assert!(
            (0..out.num_rows())
                .any(|i| !rule.is_null(i) && rule.value(i) == "one_exclusive_per_profile")
        );
    }

    #[test]
    fn result_does_not_depend_on_input_order() {
        let mut rows = vec![
            ("events", "e1", 5, "anonymous_id", "c1"),
            ("events", "e1", 5, "user_id", "u1"),
            ("events", "e2", 1, "anonymous_id", "c1"),
            ("events", "e2", 1, "email", "z@x.com"),
            ("events", "e3", 3, "anonymous_id", "c9"),
            ("events", "e3", 3, "email", "z@x.com"),
        ];
        let a = run(&rows);
        rows.reverse();
        assert_eq!(a, run(&rows));
    }
}
