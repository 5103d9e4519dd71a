//! `explain_identity('a', 'b')`: why two identifiers are in one profile, or
//! why not. An identifier is written `type:value` (`email:ana@x.com`) or just
//! `value`.
//!
//! Joined: one row per link of the chain between them, walked over the
//! profile's applied links (`identity_links`, a tree, so the chain is
//! unique), each with the row that carried it (source, row key, time).
//! Not joined: rows saying why — an identifier was rejected (and by which
//! rule), was never seen, or a rejected link stood between their profiles.
//!
//! It reads `identity_map`, `identity_links` and `identity_rejections` from
//! the session's schema, when it is planned: an explanation is a small,
//! interactive answer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::plan_err;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

#[derive(Debug)]
pub struct ExplainIdentityFunc;

impl TableFunctionImpl for ExplainIdentityFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let text = |i: usize| super::text_literal("explain_identity", exprs, i);
        match (text(0)?, text(1)?, exprs.len()) {
            (Some(a), Some(b), 2) => Ok(Arc::new(ExplainIdentityTable { a, b })),
            _ => plan_err!("explain_identity('type:value', 'type:value') takes two text literals"),
        }
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("step", DataType::Int64, true),
        Field::new("from_type", DataType::Utf8, true),
        Field::new("from_value", DataType::Utf8, true),
        Field::new("to_type", DataType::Utf8, true),
        Field::new("to_value", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("row_key", DataType::Utf8, true),
        Field::new(
            "linked_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("explanation", DataType::Utf8, false),
    ]))
}

#[derive(Debug)]
struct ExplainIdentityTable {
    a: String,
    b: String,
}

/// `(type, value)`; a bare value matches any type.
fn parse(id: &str) -> (Option<String>, String) {
    match id.split_once(':') {
        Some((t, v))
            if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            (Some(t.to_owned()), v.to_owned())
        }
        _ => (None, id.to_owned()),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Runs `sql` and returns its rows as text (timestamps as µs since the epoch).
async fn rows(state: &SessionState, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let plan = state.create_logical_plan(sql).await?;
    let physical = state.create_physical_plan(&plan).await?;
    let mut out = Vec::new();
    for batch in collect(physical, state.task_ctx()).await? {
        let columns = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(..) => cast(
                    &cast(
                        c,
                        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    )?
                    .as_primitive::<TimestampMicrosecondType>()
                    .reinterpret_cast::<datafusion::arrow::datatypes::Int64Type>(),
                    &DataType::Utf8,
                ),
                _ => cast(c, &DataType::Utf8),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        (!s.is_null(r)).then(|| s.value(r).to_owned())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

struct Step {
    from: (String, String),
    to: (String, String),
    source: Option<String>,
    row_key: Option<String>,
    at: Option<i64>,
    explanation: String,
}

impl ExplainIdentityTable {
    /// `(type, value, profile_id)` of the identifiers matching `id`.
    async fn find(&self, state: &SessionState, id: &str) -> Result<Vec<(String, String, String)>> {
        let (t, v) = parse(id);
        let type_filter = t
            .map(|t| format!(" AND id_type = {}", quote(&t)))
            .unwrap_or_default();
        let found = rows(
            state,
            &format!("SELECT id_type, id_value, profile_id FROM identity_map WHERE id_value = {}{type_filter}", quote(&v)),
        )
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|r| Some((r[0].clone()?, r[1].clone()?, r[2].clone()?)))
            .collect())
    }

    async fn why_missing(&self, state: &SessionState, id: &str) -> Result<Vec<Step>> {
        let (t, v) = parse(id);
        let type_filter = t
            .clone()
            .map(|t| format!(" AND id_type = {}", quote(&t)))
            .unwrap_or_default();
        let rejected = rows(
            state,
            &format!(
                "SELECT id_type, id_value, rule, reason, source, row_key FROM identity_rejections \
                 WHERE linked_value IS NULL AND id_value = {}{type_filter}",
                quote(&v)
            ),
        )
        .await?;
        if rejected.is_empty() {
            return Ok(vec![Step {
                from: (t.unwrap_or_default(), v.clone()),
                to: (String::new(), String::new()),
                source: None,
                row_key: None,
                at: None,
                explanation: format!(
                    "not joined: {id} was never seen (after normalisation, e.g. lower-case emails)"
                ),
            }]);
        }
        Ok(rejected
            .into_iter()
            .map(|r| Step {
                from: (
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                ),
                to: (String::new(), String::new()),
                source: r[4].clone(),
                row_key: r[5].clone(),
                at: None,
                explanation: format!(
                    "not joined: {} '{}' was rejected by rule {}: {}",
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                    r[2].clone().unwrap_or_default(),
                    r[3].clone().unwrap_or_default()
                ),
            })
            .collect())
    }

    /// Rejected identifiers (shared devices, super-connectors, blocked
    /// values) that appear in rows of both profiles: the rejections that cut
    /// the chain. Needs the `identifiers` model; without it, nothing.
    async fn shared_rejections(&self, state: &SessionState, p: &str, q: &str) -> Vec<Step> {
        let touching = |profile: &str| {
            format!(
                "SELECT DISTINCT r.id_type, r.id_value, r.rule, r.reason, ir.source, ir.row_key \
                 FROM identity_rejections r \
                 JOIN identifiers ir ON ir.id_type = r.id_type AND ir.id_value = r.id_value \
                 JOIN identifiers i ON i.source = ir.source AND i.row_key = ir.row_key \
                 JOIN identity_map m ON m.id_type = i.id_type AND m.id_value = i.id_value \
                 WHERE r.linked_value IS NULL AND m.profile_id = {}",
                quote(profile)
            )
        };
        let (Ok(in_p), Ok(in_q)) = (
            rows(state, &touching(p)).await,
            rows(state, &touching(q)).await,
        ) else {
            return Vec::new();
        };
        let key = |r: &Vec<Option<String>>| (r[0].clone(), r[1].clone());
        let in_q: std::collections::HashSet<_> = in_q.iter().map(key).collect();
        let mut seen = std::collections::HashSet::new();
        in_p.into_iter()
            .filter(|r| in_q.contains(&key(r)) && seen.insert(key(r)))
            .map(|r| {
                let s = |i: usize| r[i].clone().unwrap_or_default();
                Step {
                    from: (s(0), s(1)),
                    to: (String::new(), String::new()),
                    source: r[4].clone(),
                    row_key: r[5].clone(),
                    at: None,
                    explanation: format!(
                        "not joined: {} '{}' appears with both profiles but was rejected by rule {}: {}",
                        s(0),
                        s(1),
                        s(2),
                        s(3)
                    ),
                }
            })
            .collect()
    }

    async fn explain(&self, state: &SessionState) -> Result<Vec<Step>> {
        let (a, b) = (
            self.find(state, &self.a).await?,
            self.find(state, &self.b).await?,
        );
        let (Some(a), Some(b)) = (a.first(), b.first()) else {
            let mut steps = Vec::new();
            if a.is_empty() {
                steps.extend(self.why_missing(state, &self.a).await?);
            }
            if b.is_empty() {
                steps.extend(self.why_missing(state, &self.b).await?);
            }
            return Ok(steps);
        };
        if a.2 != b.2 {
            let cut = rows(
                state,
                &format!(
                    "SELECT r.id_type, r.id_value, r.linked_type, r.linked_value, r.rule, r.reason, r.source, r.row_key \
                     FROM identity_rejections r \
                     JOIN identity_map x ON x.id_type = r.id_type AND x.id_value = r.id_value \
                     JOIN identity_map y ON y.id_type = r.linked_type AND y.id_value = r.linked_value \
                     WHERE x.profile_id IN ({p}, {q}) AND y.profile_id IN ({p}, {q}) AND x.profile_id <> y.profile_id",
                    p = quote(&a.2),
                    q = quote(&b.2)
                ),
            )
            .await?;
            if cut.is_empty() {
                let shared = self.shared_rejections(state, &a.2, &b.2).await;
                if !shared.is_empty() {
                    return Ok(shared);
                }
                return Ok(vec![Step {
                    from: (a.0.clone(), a.1.clone()),
                    to: (b.0.clone(), b.1.clone()),
                    source: None,
                    row_key: None,
                    at: None,
                    explanation: format!(
                        "not joined: they are in profiles {} and {}, and no row links those profiles",
                        a.2, b.2
                    ),
                }]);
            }
            return Ok(cut
                .into_iter()
                .map(|r| {
                    let s = |i: usize| r[i].clone().unwrap_or_default();
                    Step {
                        from: (s(0), s(1)),
                        to: (s(2), s(3)),
                        source: r[6].clone(),
                        row_key: r[7].clone(),
                        at: None,
                        explanation: format!(
                            "not joined: this link was rejected by rule {}: {}",
                            s(4),
                            s(5)
                        ),
                    }
                })
                .collect());
        }
        // Same profile: walk its link tree from a to b.
        let links = rows(
            state,
            &format!(
                "SELECT id_type, id_value, linked_type, linked_value, source, row_key, linked_at \
                 FROM identity_links WHERE profile_id = {}",
                quote(&a.2)
            ),
        )
        .await?;
        type Node = (String, String);
        let mut adjacent: HashMap<Node, Vec<(Node, usize)>> = HashMap::new();
        for (i, r) in links.iter().enumerate() {
            let s = |k: usize| r[k].clone().unwrap_or_default();
            adjacent
                .entry((s(0), s(1)))
                .or_default()
                .push(((s(2), s(3)), i));
            adjacent
                .entry((s(2), s(3)))
                .or_default()
                .push(((s(0), s(1)), i));
        }
        let (start, goal): (Node, Node) = ((a.0.clone(), a.1.clone()), (b.0.clone(), b.1.clone()));
        let mut came: HashMap<Node, (Node, usize)> = HashMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(n) = queue.pop_front() {
            if n == goal {
                break;
            }
            for (m, link) in adjacent.get(&n).into_iter().flatten() {
                if *m != start && !came.contains_key(m) {
                    came.insert(m.clone(), (n.clone(), *link));
                    queue.push_back(m.clone());
                }
            }
        }
        if start == goal {
            return Ok(vec![Step {
                from: start.clone(),
                to: goal,
                source: None,
                row_key: None,
                at: None,
                explanation: format!("the same identifier, in profile {}", a.2),
            }]);
        }
        let mut path = Vec::new();
        let mut at = goal.clone();
        while let Some((prev, link)) = came.get(&at) {
            path.push((prev.clone(), at.clone(), *link));
            at = prev.clone();
        }
        path.reverse();
        Ok(path
            .into_iter()
            .map(|(from, to, link)| {
                let r = &links[link];
                Step {
                    from,
                    to,
                    source: r[4].clone(),
                    row_key: r[5].clone(),
                    at: r[6].as_deref().and_then(|t| t.parse().ok()),
                    explanation: format!(
                        "linked: seen together in {} row {}",
                        r[4].clone().unwrap_or_default(),
                        r[5].clone().unwrap_or_default()
                    ),
                }
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl TableProvider for ExplainIdentityTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = super::full_session("explain_identity", state)?;
        let steps = self.explain(state).await?;
        let (mut step, mut at) = (
            Int64Builder::new(),
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
        );
        let mut text: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
        for (i, s) in steps.iter().enumerate() {
            step.append_value(i as i64 + 1);
            let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            text[0].append_option(non_empty(&s.from.0));
            text[1].append_option(non_empty(&s.from.1));
            text[2].append_option(non_empty(&s.to.0));
            text[3].append_option(non_empty(&s.to.1));
            text[4].append_option(s.source.clone());
            text[5].append_option(s.row_key.clone());
            at.append_option(s.at);
            text[6].append_value(&s.explanation);
        }
        let mut columns: Vec<Arc<dyn Array>> = vec![Arc::new(step.finish())];
        columns.extend(
            text[..6]
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as Arc<dyn Array>),
        );
        columns.push(Arc::new(at.finish()));
        columns.push(Arc::new(text[6].finish()));
        let batch = RecordBatch::try_new(schema(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema(),
            projection.cloned(),
        )?)
    }
}
