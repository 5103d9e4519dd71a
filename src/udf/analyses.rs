//! Analyses from the CDP playbook, as table functions over the shipped
//! view `profile_events` (every event with its profile):
//!
//! - `funnel('7 days', 'Product Viewed', 'Product Added', 'Order Completed')`:
//!   how many profiles reach each step, in order, within the window from
//!   their first step-one event, and how many drop off before each step;
//! - `paths_after('Product Added', 3)`: what people do next — the paths
//!   of the (up to) 3 events after each profile's first `Product Added`,
//!   with how many profiles took each;
//! - `cohort_retention('week')`: profiles grouped by the period (`day`,
//!   `week`, `month`) of their first event, and the share active in each
//!   later period.
//!
//! A step is an event's `event` (track calls) or else its `type` (`page`,
//! `identify`, …). Each function builds a query from its arguments, and
//! is planned like a view when it is scanned (see `catalog::views`), so
//! it reads the current versions of the tables below it.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use crate::catalog::views::{ViewDef, ViewProvider};
use crate::models::template::Period;
use crate::storage::publish::columns_of;

/// The step an event counts as.
const STEP: &str = "coalesce(event, type)";

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A provider planning `sql` as a view with these columns.
fn query_table(name: String, sql: String, schema: SchemaRef) -> Arc<dyn TableProvider> {
    let def = ViewDef {
        schema: "public".into(),
        name,
        sql,
        columns: columns_of(&schema),
        depends_on: vec!["public.profile_events".into()],
        created_at: String::new(),
        comments: Default::default(),
    };
    Arc::new(ViewProvider::new(def, schema))
}

fn fields(columns: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

fn texts(function: &str, exprs: &[Expr], from: usize) -> Result<Vec<String>> {
    (from..exprs.len())
        .map(|i| {
            super::text_literal(function, exprs, i)?.ok_or_else(|| {
                datafusion::error::DataFusionError::Plan(format!(
                    "{function}: missing argument {}",
                    i + 1
                ))
            })
        })
        .collect()
}

fn integer(function: &str, exprs: &[Expr], i: usize) -> Result<Option<i64>> {
    match exprs.get(i) {
        None => Ok(None),
        Some(Expr::Literal(v, _)) => match v {
            ScalarValue::Int64(Some(n)) => Ok(Some(*n)),
            ScalarValue::Int32(Some(n)) => Ok(Some(i64::from(*n))),
            ScalarValue::UInt64(Some(n)) => Ok(Some(*n as i64)),
            other => plan_err!(
                "{function}: argument {} must be an integer, got {other}",
                i + 1
            ),
        },
        Some(other) => plan_err!(
            "{function}: argument {} must be an integer, got {other}",
            i + 1
        ),
    }
}

/// `funnel(window, step, step, …)`.
#[derive(Debug)]
pub struct FunnelFunc;

impl TableFunctionImpl for FunnelFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let all = texts("funnel", exprs, 0)?;
        let Some((window, steps)) = all.split_first().filter(|(_, s)| s.len() >= 2) else {
            return plan_err!(
                "funnel('7 days', 'first step', 'second step', …) takes a window and two steps or more"
            );
        };
        let Some(period) = Period::parse(window) else {
            return plan_err!("funnel: '{window}' is not a window such as '7 days' or '12 hours'");
        };
        let seconds = period.micros / 1_000_000;
        let names: Vec<String> = steps.iter().map(|s| quote(s)).collect();
        let mut sql = format!(
            "WITH ev AS (SELECT profile_id, {STEP} AS step, \"timestamp\" AS ts \
             FROM public.profile_events WHERE {STEP} IN ({})), \
             s1 AS (SELECT profile_id, min(ts) AS t1, min(ts) AS t FROM ev WHERE step = {} GROUP BY profile_id)",
            names.join(", "),
            names[0]
        );
        for (i, name) in names.iter().enumerate().skip(1) {
            sql.push_str(&format!(
                ", s{n} AS (SELECT s.profile_id, s.t1, min(ev.ts) AS t FROM s{i} s \
                 JOIN ev ON ev.profile_id = s.profile_id AND ev.step = {name} \
                 AND ev.ts >= s.t AND ev.ts <= s.t1 + INTERVAL '{seconds} seconds' \
                 GROUP BY s.profile_id, s.t1)",
                n = i + 1
            ));
        }
        let counts: Vec<String> = (1..=names.len())
            .map(|n| format!("SELECT {n} AS step, count(*) AS profiles FROM s{n}"))
            .collect();
        let labels: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("({}, {n})", i + 1))
            .collect();
        sql.push_str(&format!(
            ", counts AS ({}), labels AS (SELECT * FROM (VALUES {}) AS l(step, event)) \
             SELECT l.step, l.event, c.profiles, \
               CAST(c.profiles AS DOUBLE PRECISION) / NULLIF(lag(c.profiles) OVER (ORDER BY l.step), 0) AS conversion_from_previous, \
               CAST(c.profiles AS DOUBLE PRECISION) / NULLIF(first_value(c.profiles) OVER (ORDER BY l.step), 0) AS conversion_from_first, \
               coalesce(lag(c.profiles) OVER (ORDER BY l.step) - c.profiles, 0) AS dropped_off \
             FROM labels l JOIN counts c ON c.step = l.step",
            counts.join(" UNION ALL "),
            labels.join(", ")
        ));
        Ok(query_table(
            "funnel".into(),
            sql,
            fields(&[
                ("step", DataType::Int64),
                ("event", DataType::Utf8),
                ("profiles", DataType::Int64),
                ("conversion_from_previous", DataType::Float64),
                ("conversion_from_first", DataType::Float64),
                ("dropped_off", DataType::Int64),
            ]),
        ))
    }
}

/// `paths_after(event, depth)`.
#[derive(Debug)]
pub struct PathsAfterFunc;

impl TableFunctionImpl for PathsAfterFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let (Some(event), depth) = (
            super::text_literal("paths_after", exprs, 0)?,
            integer("paths_after", exprs, 1)?.unwrap_or(3),
        ) else {
            return plan_err!("paths_after('event' [, depth]) takes an event name");
        };
        if !(1..=20).contains(&depth) || exprs.len() > 2 {
            return plan_err!("paths_after('event' [, depth]): depth is 1 to 20");
        }
        let event = quote(&event);
        let sql = format!(
            "WITH numbered AS (SELECT profile_id, {STEP} AS step, \
               row_number() OVER (PARTITION BY profile_id ORDER BY \"timestamp\", message_id) AS n \
               FROM public.profile_events), \
             starts AS (SELECT profile_id, min(n) AS n0 FROM numbered WHERE step = {event} GROUP BY profile_id), \
             following AS (SELECT s.profile_id, e.step, e.n - s.n0 AS pos FROM starts s \
               JOIN numbered e ON e.profile_id = s.profile_id AND e.n > s.n0 AND e.n <= s.n0 + {depth}), \
             paths AS ( \
               SELECT profile_id, array_to_string(array_agg(step ORDER BY pos), ' → ') AS path \
               FROM following GROUP BY profile_id \
               UNION ALL \
               SELECT profile_id, '(end)' AS path FROM starts s \
               WHERE NOT EXISTS (SELECT 1 FROM following f WHERE f.profile_id = s.profile_id)) \
             SELECT path, count(*) AS profiles, \
               CAST(count(*) AS DOUBLE PRECISION) / sum(count(*)) OVER () AS share \
             FROM paths GROUP BY path"
        );
        Ok(query_table(
            "paths_after".into(),
            sql,
            fields(&[
                ("path", DataType::Utf8),
                ("profiles", DataType::Int64),
                ("share", DataType::Float64),
            ]),
        ))
    }
}

/// `cohort_retention(period)`.
#[derive(Debug)]
pub struct CohortRetentionFunc;

impl TableFunctionImpl for CohortRetentionFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let period =
            super::text_literal("cohort_retention", exprs, 0)?.unwrap_or_else(|| "week".into());
        let offset = match period.as_str() {
            "day" => {
                "CAST((date_part('epoch', a.period) - date_part('epoch', a.cohort)) / 86400 AS BIGINT)"
            }
            "week" => {
                "CAST((date_part('epoch', a.period) - date_part('epoch', a.cohort)) / 604800 AS BIGINT)"
            }
            "month" => {
                "CAST((date_part('year', a.period) - date_part('year', a.cohort)) * 12 \
                        + date_part('month', a.period) - date_part('month', a.cohort) AS BIGINT)"
            }
            other => {
                return plan_err!("cohort_retention: period '{other}' is not day, week or month");
            }
        };
        if exprs.len() > 1 {
            return plan_err!("cohort_retention(['day' | 'week' | 'month']) takes one argument");
        }
        let sql = format!(
            "WITH ev AS (SELECT DISTINCT profile_id, date_trunc('{period}', \"timestamp\") AS period \
               FROM public.profile_events), \
             firsts AS (SELECT profile_id, min(period) AS cohort FROM ev GROUP BY profile_id), \
             sizes AS (SELECT cohort, count(*) AS cohort_size FROM firsts GROUP BY cohort), \
             activity AS (SELECT e.profile_id, f.cohort, e.period FROM ev e JOIN firsts f ON f.profile_id = e.profile_id) \
             SELECT a.cohort, {offset} AS period_offset, count(*) AS active_profiles, s.cohort_size, \
               CAST(count(*) AS DOUBLE PRECISION) / s.cohort_size AS retention \
             FROM activity a JOIN sizes s ON s.cohort = a.cohort \
             GROUP BY a.cohort, {offset}, s.cohort_size"
        );
        Ok(query_table(
            "cohort_retention".into(),
            sql,
            fields(&[
                (
                    "cohort",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ),
                ("period_offset", DataType::Int64),
                ("active_profiles", DataType::Int64),
                ("cohort_size", DataType::Int64),
                ("retention", DataType::Float64),
            ]),
        ))
    }
}
