//! Identity resolution over identifier occurrences.
//!
//! Input: rows `(source, row_key, ts, id_type, id_value, reject_reason)`, one
//! per identifier
//! seen in a source row (an event, a CRM contact, an order). Identifiers that
//! occur in the same `(source, row_key)` are linked. Output: one row per
//! distinct identifier with its `profile_id`, plus one row per rejection.
//!
//! Rules, applied in this order:
//! 0. A row with a `reject_reason` (set by the model, e.g. "invalid email")
//!    rejects that identifier with that reason.
//! 1. **Junk values** (`null`, `0`, all-zero uuids, …) never link anything;
//!    each is reported once as a rejected identifier.
//! 2. **Shared identifiers**: an identifier that occurs beside two different
//!    values of an *exclusive* type (by default `user_id`) — a family iPad, a
//!    shared cookie — is rejected whole, with both values as evidence.
//! 3. Remaining links are applied in event-time order (ties broken by source,
//!    row key and value, so the input order never matters); a link that would
//!    put two different exclusive values in one profile is rejected and
//!    reported with the row that carried it.
//!
//! Profile ids are derived from the profile's representative identifier (its
//! exclusive id if it has one, else its earliest-seen identifier), so the same
//! input gives the same ids on every run.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::error::{DataFusionError, Result};

use super::junk::junk_reason;
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolveOptions {
    /// Identifier types of which a profile may hold at most one value.
    pub exclusive_types: Vec<String>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            exclusive_types: vec!["user_id".to_owned()],
        }
    }
}

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
}

/// Resolves identities; `batches` must have [`input_schema`].
pub fn resolve(batches: &[RecordBatch], options: &ResolveOptions) -> Result<RecordBatch> {
    let mut type_names: Vec<&str> = Vec::new();
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

            let type_idx = *type_index.entry(t).or_insert_with(|| {
                type_names.push(t);
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
                    if !reject.is_null(row) && info.rejected.is_none() {
                        info.rejected = Some(Rejection {
                            reason: reject.value(row).to_owned(),
                            rule: "model",
                        });
                    }
                    id
                }
                None => {
                    let id = ids.len() as u32;
                    let model_rejection = (!reject.is_null(row)).then(|| Rejection {
                        reason: reject.value(row).to_owned(),
                        rule: "model",
                    });
                    ids.push(IdInfo {
                        type_idx,
                        value: v,
                        first_ts: when,
                        last_ts: when,
                        source: src,
                        row_key: key.unwrap_or(""),
                        rejected: model_rejection.or_else(|| {
                            junk_reason(v).map(|r| Rejection {
                                reason: r.to_owned(),
                                rule: "junk_values",
                            })
                        }),
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

    let exclusive: Vec<bool> = type_names
        .iter()
        .map(|t| options.exclusive_types.iter().any(|e| e == t))
        .collect();
    members.sort_unstable();
    members.dedup();

    // Rule 2: identifiers seen beside two different exclusive values.
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
                if exclusive[info.type_idx as usize] || info.rejected.is_some() {
                    continue;
                }
                match anchor_seen[x as usize] {
                    None => anchor_seen[x as usize] = Some(a),
                    Some(prev) if prev != a => {
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

    // Links: a star around one member of each row (its exclusive id if any).
    let mut edges: Vec<(u32, u32, u32)> = Vec::new(); // (group, hub, other)
    for_each_group(&members, |group, group_members| {
        let live: Vec<u32> = group_members
            .iter()
            .copied()
            .filter(|&m| ids[m as usize].rejected.is_none())
            .collect();
        let hub = live
            .iter()
            .copied()
            .find(|&m| exclusive[ids[m as usize].type_idx as usize])
            .or_else(|| live.first().copied());
        if let Some(hub) = hub {
            for &x in &live {
                if x != hub {
                    edges.push((group, hub, x));
                }
            }
        }
    });
    edges.sort_by(|a, b| {
        let (ga, gb) = (&groups[a.0 as usize], &groups[b.0 as usize]);
        (
            ga.ts.unwrap_or(i64::MAX),
            ga.source,
            ga.row_key,
            ids[a.2 as usize].value,
        )
            .cmp(&(
                gb.ts.unwrap_or(i64::MAX),
                gb.source,
                gb.row_key,
                ids[b.2 as usize].value,
            ))
    });

    // Rule 3: union in time order, never two exclusive values in one set.
    let mut uf = UnionFind::new(ids.len());
    let mut anchor: Vec<Option<u32>> = ids
        .iter()
        .enumerate()
        .map(|(i, info)| {
            (exclusive[info.type_idx as usize] && info.rejected.is_none()).then_some(i as u32)
        })
        .collect();
    let mut link_rejections = Vec::new();
    for &(group, hub, x) in &edges {
        let (rh, rx) = (uf.find(hub), uf.find(x));
        if rh == rx {
            continue;
        }
        match (anchor[rh as usize], anchor[rx as usize]) {
            (Some(a), Some(b)) if a != b => {
                let (p, q) = (&ids[a as usize], &ids[b as usize]);
                link_rejections.push(LinkRejection {
                    id: x,
                    linked: hub,
                    group,
                    reason: format!(
                        "link would merge {} '{}' with {} '{}'",
                        type_names[p.type_idx as usize],
                        p.value,
                        type_names[q.type_idx as usize],
                        q.value
                    ),
                });
            }
            (a, b) => {
                let root = uf.union(rh, rx);
                anchor[root as usize] = a.or(b);
            }
        }
    }

    // Representatives: the exclusive id, else the earliest-seen identifier.
    let mut representative: Vec<Option<u32>> = vec![None; ids.len()];
    for (i, info) in ids.iter().enumerate() {
        if info.rejected.is_some() {
            continue;
        }
        let root = uf.find(i as u32) as usize;
        if let Some(a) = anchor[root] {
            representative[root] = Some(a);
            continue;
        }
        let better = match representative[root] {
            None => true,
            Some(r) => {
                let cur = &ids[r as usize];
                (
                    info.first_ts.unwrap_or(i64::MAX),
                    type_names[info.type_idx as usize],
                    info.value,
                ) < (
                    cur.first_ts.unwrap_or(i64::MAX),
                    type_names[cur.type_idx as usize],
                    cur.value,
                )
            }
        };
        if better {
            representative[root] = Some(i as u32);
        }
    }

    let mut out = OutputBuilder::new(ids.len() + link_rejections.len());
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
                let root = uf.find(i) as usize;
                let rep = &ids[representative[root].unwrap_or(i) as usize];
                let pid = profile_id(type_names[rep.type_idx as usize], rep.value);
                out.push(Row {
                    profile_id: Some(&pid),
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
            rule: Some("one_exclusive_per_profile"),
            linked: Some((type_names[hub.type_idx as usize], hub.value)),
            source: g.source,
            row_key: g.row_key,
            first: g.ts,
            last: g.ts,
        });
    }
    out.finish()
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
        let out = resolve(&[occurrences(rows)], &ResolveOptions::default()).unwrap();
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
        let out = resolve(&[occurrences(&rows)], &ResolveOptions::default()).unwrap();
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
