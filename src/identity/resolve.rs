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
//!
//! Every identifier row and link row also names its **component**: the set
//! of identifiers joined by any row, before rules 2–4 cut it (blocked and
//! model-rejected values belong to none). Rules only ever look inside a
//! component, so a component that new rows do not reach resolves as before:
//! that is what makes incremental runs possible (see [`super::incremental`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::graph::{Graph, NO_FIRST, NO_LAST, NONE, Rejection, kept_columns};
use super::limits::Held;
use super::rules::Rules;
use super::stable_ids::stable_ids;
pub use super::stable_ids::{Previous, identifier_hash, profile_id};
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
        Field::new("component_id", DataType::Utf8, true),
    ]))
}

/// Column of [`output_schema`] holding the component.
pub const COMPONENT_COLUMN: usize = 12;

/// No component: a blocked or model-rejected value.
const NO_COMPONENT: u64 = u64::MAX;

/// The component of each identifier (see the module docs): keyed by the
/// smallest [`identifier_hash`] of its members, so it names the same set
/// whatever the input order or the rest of the data.
fn components(g: &Graph) -> Vec<u64> {
    let mut uf = UnionFind::new(g.len());
    g.members.for_each(|_, group| {
        let mut live = group.iter().copied().filter(|&m| g.is_live(m));
        if let Some(first) = live.next() {
            for m in live {
                uf.union(first, m);
            }
        }
    });
    let mut key = vec![NO_COMPONENT; g.len()];
    for i in 0..g.len() as u32 {
        if g.is_live(i) {
            let root = uf.find(i) as usize;
            key[root] = key[root].min(identifier_hash(g.type_name(i), g.value(i)));
        }
    }
    (0..g.len() as u32)
        .map(|i| {
            if g.is_live(i) {
                key[uf.find(i) as usize]
            } else {
                NO_COMPONENT
            }
        })
        .collect()
}

/// The process's resident memory (Linux; 0 elsewhere), for the phase log.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| (pages * 4096) >> 20)
}

/// Where output batches go as they fill (from two threads at once).
pub type Sink<'s> = &'s (dyn Fn(RecordBatch) -> Result<()> + Sync);

/// Resolves identities into a list of batches (see [`resolve_into`]).
pub fn resolve(
    batches: Vec<RecordBatch>,
    rules: &Rules,
    previous: &Previous,
) -> Result<Vec<RecordBatch>> {
    let out = std::sync::Mutex::new(Vec::new());
    resolve_into(batches, rules, previous, &|batch| {
        out.lock()
            .map_err(|_| datafusion::error::DataFusionError::Internal("output lock".into()))?
            .push(batch);
        Ok(())
    })?;
    out.into_inner()
        .map_err(|_| datafusion::error::DataFusionError::Internal("output lock".into()))
}

/// Resolves identities; `batches` must have [`input_schema`]. Most of
/// their columns are dropped once interned (see [`Graph::build`]). The
/// output goes to `sink` batch by batch as it is built, so it is never
/// held whole; a sink error stops the work.
pub fn resolve_into(
    batches: Vec<RecordBatch>,
    rules: &Rules,
    previous: &Previous,
    sink: Sink,
) -> Result<()> {
    let clock = std::time::Instant::now();
    let phase = |name: &str| {
        tracing::debug!(
            phase = name,
            seconds = clock.elapsed().as_secs_f64(),
            resident_mib = resident_mib(),
            "resolve"
        )
    };
    let kept = kept_columns(&batches);
    let mut g = Graph::build(batches, &kept, rules)?;
    phase("graph");
    let component = components(&g);
    let component_of = |i: u32| Some(component[i as usize]).filter(|&c| c != NO_COMPONENT);
    phase("components");
    reject_shared_identifiers(&mut g);
    reject_super_connectors(&mut g);
    phase("rejections");
    let edges = ordered_edges(&g);
    phase("edges");
    let (mut uf, applied, link_rejections) = join_within_limits(&g, &edges);
    drop(edges);
    phase("union");

    // Sets, by root, and their representatives: the strongest
    // one-per-profile value, else the earliest-seen identifier.
    let exclusive: Vec<bool> = g
        .type_rules
        .iter()
        .map(|r| r.max_per_profile == Some(1))
        .collect();
    // Rank: one-per-profile first (by priority), then earliest seen, then
    // type and value — the strings only read on a tie.
    let rank = |i: u32| {
        let ex = exclusive[g.id_type[i as usize] as usize];
        (
            !ex,
            if ex { g.rule(i).priority } else { 0 },
            g.first_ts[i as usize],
        )
    };
    let outranks = |i: u32, other: u32| match rank(i).cmp(&rank(other)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => {
            (g.type_name(i), g.value(i)) < (g.type_name(other), g.value(other))
        }
    };
    let mut root_of: Vec<u32> = vec![NONE; g.len()];
    let mut representative: Vec<u32> = vec![NONE; g.len()];
    for i in 0..g.len() as u32 {
        if !g.is_live(i) {
            continue;
        }
        let root = uf.find(i);
        root_of[i as usize] = root;
        let rep = &mut representative[root as usize];
        if *rep == NONE || outranks(i, *rep) {
            *rep = i;
        }
    }
    drop(uf);
    let roots: Vec<u32> = (0..g.len() as u32)
        .filter(|&i| g.is_live(i) && root_of[i as usize] == i)
        .collect();
    let root_key = |r: u32| {
        let rep = representative[r as usize];
        (g.type_name(rep), g.value(rep))
    };

    // Profile ids: stable against the previous run.
    let mut old_of: Vec<(u32, u32)> = Vec::with_capacity(previous.linked().size_hint().0);
    for (t, v, old) in previous.linked() {
        if let Some(id) = g.find(t, v)
            && g.is_live(id)
        {
            old_of.push((old, root_of[id as usize]));
        }
    }
    let (pids, new_redirects) = stable_ids(&roots, root_key, old_of, previous);
    phase("profile ids");
    // The profile id of each root, by root (reusing `representative`).
    let mut slot_of = representative;
    for (slot, &root) in roots.iter().enumerate() {
        slot_of[root as usize] = slot as u32;
    }
    let pid_of = |id: u32| pids[slot_of[root_of[id as usize] as usize] as usize].as_str();

    // Output on two threads: identifiers split in halves; the links and
    // redirects go with the first half.
    let half = g.len() as u32 / 2;
    let id_rows = |out: &mut OutputBuilder, range: std::ops::Range<u32>| -> Result<()> {
        for i in range {
            let ev = g.evidence[i as usize];
            let (first, last) = (g.first_ts[i as usize], g.last_ts[i as usize]);
            let rejection = g.rejection(i);
            out.push(Row {
                profile_id: rejection.is_none().then(|| pid_of(i)),
                id_type: g.type_name(i),
                id_value: g.value(i),
                status: if rejection.is_some() {
                    STATUS_REJECTED
                } else {
                    STATUS_LINKED
                },
                reason: rejection.map(|r| r.reason.as_str()),
                rule: rejection.map(|r| r.rule),
                linked: None,
                source: g.source(ev),
                row_key: g.row_key(ev),
                first: (first != NO_FIRST).then_some(first),
                last: (last != NO_LAST).then_some(last),
                component: component_of(i),
            })?;
        }
        Ok(())
    };
    let (first_half, second_half) = std::thread::scope(|s| {
        let second = s.spawn(|| {
            let mut out = OutputBuilder::new(sink);
            id_rows(&mut out, half..g.len() as u32)?;
            out.finish()
        });
        let first = (|| {
            let mut out = OutputBuilder::new(sink);
            id_rows(&mut out, 0..half)?;
            // A link row: the edge, its evidence row and time.
            let link_row = |e: &Edge, profile_id, status, reason, rule| {
                let ts = g.group_ts[e.group as usize];
                Row {
                    profile_id,
                    id_type: g.type_name(e.other),
                    id_value: g.value(e.other),
                    status,
                    reason,
                    rule,
                    linked: Some((g.type_name(e.hub), g.value(e.hub))),
                    source: g.source(e.group),
                    row_key: g.row_key(e.group),
                    first: (ts != NO_FIRST).then_some(ts),
                    last: (ts != NO_FIRST).then_some(ts),
                    component: component_of(e.other),
                }
            };
            for e in &applied {
                out.push(link_row(e, Some(pid_of(e.other)), STATUS_LINK, None, None))?;
            }
            for (e, rule, reason) in &link_rejections {
                out.push(link_row(
                    e,
                    None,
                    STATUS_REJECTED,
                    Some(reason.as_str()),
                    Some(*rule),
                ))?;
            }
            for (old, new, reason, at) in previous
                .redirects
                .iter()
                .map(|(o, n, r, t)| (o.as_str(), n.as_str(), r.as_str(), *t))
                .chain(
                    new_redirects
                        .iter()
                        .map(|(o, n, r)| (o.as_str(), n.as_str(), *r, Some(previous.now))),
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
                    component: None,
                })?;
            }
            out.finish()
        })();
        (first, second.join())
    });
    let second_half = second_half.map_err(|_| {
        datafusion::error::DataFusionError::Internal("resolve_identities: output panicked".into())
    })?;
    first_half?;
    second_half?;
    phase("output");
    Ok(())
}

/// Working memory [`resolve`] needs for `rows` occurrences beyond the input
/// columns, in bytes (an estimate from the sizes of its arrays, used to
/// fail early with a clear message instead of being killed).
pub fn memory_estimate(rows: usize) -> usize {
    // members and edges (8 + 16 per row), identifier and group columns
    // with their hash tables (about 60 per row at half as many keys as
    // rows), union-find, limit lists and roots (about 24 per row), and
    // the output builders (about 90 per row).
    rows * (8 + 16 + 60 + 24 + 90)
}

/// Rule 2: an identifier seen beside two different values of a
/// one-per-profile type (a family iPad, a shared cookie) is rejected. The
/// decision and the two values its reason names (the smallest, by type and
/// value) do not depend on the order of the rows.
fn reject_shared_identifiers(g: &mut Graph) {
    let exclusive: Vec<bool> = g
        .type_rules
        .iter()
        .map(|r| r.max_per_profile == Some(1))
        .collect();
    if !exclusive.contains(&true) {
        return;
    }
    let is_anchor = |m: u32| exclusive[g.id_type[m as usize] as usize] && g.is_live(m);
    // First pass: which identifiers meet two anchors of one type.
    let mut anchor_seen: Vec<u32> = vec![NONE; g.len()];
    let mut shared: Vec<bool> = vec![false; g.len()];
    let mut any = false;
    g.members.for_each(|_, group| {
        for &a in group.iter().filter(|&&m| is_anchor(m)) {
            for &x in group {
                if !g.is_live(x) || g.id_type[x as usize] == g.id_type[a as usize] {
                    continue;
                }
                let prev = anchor_seen[x as usize];
                if prev == NONE {
                    anchor_seen[x as usize] = a;
                } else if prev != a && g.id_type[prev as usize] == g.id_type[a as usize] {
                    shared[x as usize] = true;
                    any = true;
                }
            }
        }
    });
    drop(anchor_seen);
    if !any {
        return;
    }
    // Second pass: every anchor of the shared ones, for the reason.
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    g.members.for_each(|_, group| {
        for &x in group.iter().filter(|&&x| shared[x as usize]) {
            pairs.extend(
                group
                    .iter()
                    .filter(|&&a| is_anchor(a) && g.id_type[a as usize] != g.id_type[x as usize])
                    .map(|&a| (x, a)),
            );
        }
    });
    pairs.sort_unstable_by(|p, q| {
        p.0.cmp(&q.0)
            .then_with(|| (g.type_name(p.1), g.value(p.1)).cmp(&(g.type_name(q.1), g.value(q.1))))
    });
    pairs.dedup();
    let mut i = 0;
    while i < pairs.len() {
        let x = pairs[i].0;
        let n = pairs[i..].iter().take_while(|p| p.0 == x).count();
        let anchors = &pairs[i..i + n];
        // The first two anchors of one type, in (type, value) order.
        if let Some(w) = anchors
            .windows(2)
            .find(|w| g.id_type[w[0].1 as usize] == g.id_type[w[1].1 as usize])
        {
            let (a, b) = (w[0].1, w[1].1);
            let reason = format!(
                "shared identifier: seen with {} '{}' and {} '{}'",
                g.type_name(a),
                g.value(a),
                g.type_name(b),
                g.value(b)
            );
            g.reject(
                x,
                Rejection {
                    reason,
                    rule: "shared_identifier",
                },
            );
        }
        i += n;
    }
}

/// Rule 3: an identifier linked to more distinct identifiers than its
/// type's `max_links` (a kiosk, a `team@` inbox) is quarantined.
fn reject_super_connectors(g: &mut Graph) {
    if g.type_rules.iter().all(|r| r.max_links.is_none()) {
        return;
    }
    let members = std::mem::take(&mut g.members);
    // Occurrence counts bound the distinct neighbours from above: only
    // identifiers over their limit by that bound are counted exactly.
    let mut bound: Vec<u32> = vec![0; g.len()];
    members.for_each(|_, group| {
        let live = group.iter().filter(|&&m| g.is_live(m)).count() as u32;
        for &m in group {
            bound[m as usize] = bound[m as usize].saturating_add(live.saturating_sub(1));
        }
    });
    let suspect = |m: u32| {
        g.is_live(m)
            && g.rule(m)
                .max_links
                .is_some_and(|max| bound[m as usize] as usize > max)
    };
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    members.for_each(|_, group| {
        for &a in group {
            if suspect(a) {
                pairs.extend(
                    group
                        .iter()
                        .filter(|&&b| b != a && g.is_live(b))
                        .map(|&b| (a, b)),
                );
            }
        }
    });
    drop(bound);
    pairs.sort_unstable();
    pairs.dedup();
    let mut i = 0;
    while i < pairs.len() {
        let a = pairs[i].0;
        let n = pairs[i..].iter().take_while(|p| p.0 == a).count();
        if let Some(max) = g.rule(a).max_links
            && n > max
        {
            g.reject(
                a,
                Rejection {
                    reason: format!("super-connector: linked to {n} identifiers (max_links {max})"),
                    rule: "max_links",
                },
            );
        }
        i += n;
    }
    g.members = members;
}

/// A link between two identifiers of one row group.
#[derive(Clone, Copy)]
struct Edge {
    /// The priority of the weaker end (links are applied strongest first).
    priority: i64,
    /// The group's place in (time, source, row key) order.
    rank: u32,
    group: u32,
    hub: u32,
    other: u32,
}

/// Links: a star around the strongest live member of each group, in the
/// order they are applied: strongest first, then by event time (ties broken
/// by source, row key and value, so the input order never matters).
fn ordered_edges(g: &Graph) -> Vec<Edge> {
    let mut edges: Vec<Edge> = Vec::new();
    let mut live: Vec<u32> = Vec::new();
    g.members.for_each(|group, members| {
        live.clear();
        live.extend(members.iter().copied().filter(|&m| g.is_live(m)));
        let Some(&hub) = live
            .iter()
            .min_by_key(|&&m| (g.rule(m).priority, g.type_name(m), g.value(m)))
        else {
            return;
        };
        for &x in &live {
            if x != hub {
                edges.push(Edge {
                    priority: g.rule(hub).priority.max(g.rule(x).priority),
                    rank: NONE,
                    group,
                    hub,
                    other: x,
                });
            }
        }
    });
    // Rank the groups that carry links by (time, source, row key).
    let mut linked_groups: Vec<u32> = edges.iter().map(|e| e.group).collect();
    linked_groups.dedup();
    linked_groups.sort_unstable_by(|&a, &b| {
        g.group_ts[a as usize]
            .cmp(&g.group_ts[b as usize])
            .then_with(|| (g.source(a), g.row_key(a)).cmp(&(g.source(b), g.row_key(b))))
    });
    let mut rank: Vec<u32> = vec![NONE; g.group_ts.len()];
    for (r, &group) in linked_groups.iter().enumerate() {
        rank[group as usize] = r as u32;
    }
    drop(linked_groups);
    for e in &mut edges {
        e.rank = rank[e.group as usize];
    }
    drop(rank);
    edges.sort_unstable_by(|a, b| {
        (a.priority, a.rank)
            .cmp(&(b.priority, b.rank))
            .then_with(|| {
                (g.value(a.other), g.type_name(a.other))
                    .cmp(&(g.value(b.other), g.type_name(b.other)))
            })
    });
    edges
}

type LinkRejection = (Edge, &'static str, String);

/// Rule 4: joins sets along `edges` in order; a link that would give a
/// profile more values of a type than `max_per_profile`, or than
/// `max_per_window` first seen within `window_days`, is rejected and
/// reported with the row that carried it; the profile itself stays.
fn join_within_limits(g: &Graph, edges: &[Edge]) -> (UnionFind, Vec<Edge>, Vec<LinkRejection>) {
    let mut uf = UnionFind::new(g.len());
    let mut held = Held::new(g);
    let mut applied = Vec::new();
    let mut rejected = Vec::new();
    for e in edges {
        let (rh, rx) = (uf.find(e.hub), uf.find(e.other));
        if rh == rx {
            continue;
        }
        match held.violation(g, rh, rx) {
            Some((rule, reason)) => rejected.push((*e, rule, reason)),
            None => {
                applied.push(*e);
                let root = uf.union(rh, rx);
                held.join(root, if root == rh { rx } else { rh });
            }
        }
    }
    (uf, applied, rejected)
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
    component: Option<u64>,
}

/// Rows per output batch: small builders that are reused, rather than one
/// huge batch grown by copying.
pub const BATCH_ROWS: usize = 64 * 1024;

struct OutputBuilder<'s> {
    strings: Vec<StringBuilder>,
    first: TimestampMicrosecondBuilder,
    last: TimestampMicrosecondBuilder,
    component: StringBuilder,
    rows: usize,
    sink: Sink<'s>,
}

impl<'s> OutputBuilder<'s> {
    fn new(sink: Sink<'s>) -> Self {
        Self {
            strings: (0..10)
                .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16))
                .collect(),
            first: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            last: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            component: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 18),
            rows: 0,
            sink,
        }
    }

    fn push(&mut self, r: Row) -> Result<()> {
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
        match r.component {
            Some(c) => self.component.append_value(render_component(c).as_str()),
            None => self.component.append_null(),
        }
        self.rows += 1;
        if self.rows == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut columns: Vec<ArrayRef> = self
            .strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(self.first.finish()));
        columns.push(Arc::new(self.last.finish()));
        columns.push(Arc::new(self.component.finish()));
        self.rows = 0;
        (self.sink)(RecordBatch::try_new(output_schema(), columns)?)
    }

    fn finish(mut self) -> Result<()> {
        if self.rows > 0 {
            self.flush()?;
        }
        Ok(())
    }
}

/// A component id as text: `c_` and 16 hex digits, written without
/// allocating.
pub fn render_component(key: u64) -> ComponentText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 18];
    text[0] = b'c';
    text[1] = b'_';
    for (i, slot) in text[2..].iter_mut().enumerate() {
        *slot = HEX[((key >> (60 - 4 * i)) & 0xf) as usize];
    }
    ComponentText(text)
}

/// See [`render_component`].
pub struct ComponentText([u8; 18]);

impl ComponentText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The key of a component id's text (`c_` and 16 hex digits).
pub fn parse_component(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("c_")?, 16).ok()
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
    use std::collections::HashMap;

    use datafusion::arrow::array::{Array, AsArray};

    use super::*;

    fn resolve_one(batches: &[RecordBatch]) -> RecordBatch {
        let out = resolve(batches.to_vec(), &Rules::builtin(), &Previous::empty(0)).unwrap();
        datafusion::arrow::compute::concat_batches(&output_schema(), &out).unwrap()
    }

    /// (id_type, id_value) → profile_id or "REJECTED".
    fn run(rows: &[(&str, &str, i64, &str, &str)]) -> HashMap<(String, String), String> {
        let out = resolve_one(&[occurrences(rows)]);
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
        let out = resolve_one(&[occurrences(&rows)]);
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
