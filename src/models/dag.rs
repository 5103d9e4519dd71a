//! The model graph: which models each model reads, found in its SQL (table
//! references outside CTEs, and text arguments of table functions that name
//! a model, as in `resolve_identities('identifiers')`; a model naming itself
//! there reads its own previous version), a build order, and
//! `--select` expressions (`name`, `name+` with descendants, `+name` with
//! ancestors, comma-separated).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, TableFactor, Value, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use super::Model;
use super::template::{self, ModelConfig};
use crate::error::{Error, Result};

/// A model with its parsed statement and dependencies.
#[derive(Debug, Clone)]
pub struct Node {
    pub model: Model,
    /// The model's SQL, rendered as for a full build.
    pub sql: String,
    pub config: ModelConfig,
    pub statement: DFStatement,
    pub depends_on: BTreeSet<String>,
}

/// Parses every model and derives the dependency graph.
pub fn build(models: Vec<Model>) -> Result<BTreeMap<String, Node>> {
    let names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    if names.len() != models.len() {
        return Err(Error::Config("two models have the same name".into()));
    }
    let mut nodes = BTreeMap::new();
    for model in models {
        let rendered = template::render(&model.sql, false).map_err(|message| Error::Model {
            model: model.name.clone(),
            path: model.path.clone(),
            message,
        })?;
        let statement = parse_model(&model, &rendered.sql)?;
        let mut refs = BTreeSet::new();
        let (tables, _) = datafusion::sql::resolve::resolve_table_references(&statement, true)?;
        for t in tables {
            let schema_ok = t
                .schema()
                .is_none_or(|s| s == crate::catalog::DEFAULT_SCHEMA);
            if schema_ok && names.contains(t.table()) {
                refs.insert(t.table().to_owned());
            }
        }
        if let DFStatement::Statement(s) = &statement {
            let mut v = TableFunctionArgs::default();
            let _ = s.visit(&mut v);
            // A model naming itself in a table function's arguments reads its
            // own previous version (as resolve_identities does to keep
            // profile ids stable): no build dependency.
            refs.extend(
                v.0.into_iter()
                    .filter(|n| names.contains(n) && *n != model.name),
            );
        }
        if refs.contains(&model.name) {
            return Err(Error::ModelCycle(format!("{} reads itself", model.name)));
        }
        nodes.insert(
            model.name.clone(),
            Node {
                model,
                sql: rendered.sql,
                config: rendered.config,
                statement,
                depends_on: refs,
            },
        );
    }
    Ok(nodes)
}

/// Parses a model's rendered SQL: exactly one query.
pub fn parse_model(model: &Model, sql: &str) -> Result<DFStatement> {
    let err = |message: String| Error::Model {
        model: model.name.clone(),
        path: model.path.clone(),
        message,
    };
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&PostgreSqlDialect {})
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut statements = parser
        .parse_statements()
        .map_err(|e| err(format!("syntax error: {e}")))?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(s @ DFStatement::Statement(_)), true) if is_query(&s) => Ok(s),
        (Some(_), true) => Err(err(
            "a model must be a single SELECT (or WITH … SELECT) query".into(),
        )),
        (None, _) => Err(err("the file holds no query".into())),
        (Some(_), false) => Err(err("a model must hold exactly one statement".into())),
    }
}

fn is_query(s: &DFStatement) -> bool {
    matches!(s, DFStatement::Statement(inner) if matches!(**inner, datafusion::sql::sqlparser::ast::Statement::Query(_)))
}

/// Text literals passed to table functions: `f('table_name')`.
#[derive(Default)]
struct TableFunctionArgs(Vec<String>);

impl Visitor for TableFunctionArgs {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            args: Some(args), ..
        } = factor
        {
            for arg in &args.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) = arg
                    && let Value::SingleQuotedString(s) = &v.value
                {
                    self.0.push(s.to_lowercase());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// A build order: every model after the models it reads; ties by name.
pub fn order(nodes: &BTreeMap<String, Node>) -> Result<Vec<String>> {
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = nodes
        .iter()
        .map(|(n, node)| {
            (
                n.as_str(),
                node.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    while !remaining.is_empty() {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, deps)| deps.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            let cycle: Vec<String> = remaining.keys().map(|s| (*s).to_owned()).collect();
            return Err(Error::ModelCycle(format!(
                "these models read each other in a cycle: {}",
                cycle.join(", ")
            )));
        }
        for n in &ready {
            remaining.remove(n);
        }
        for deps in remaining.values_mut() {
            for n in &ready {
                deps.remove(n);
            }
        }
        out.extend(ready.into_iter().map(str::to_owned));
    }
    Ok(out)
}

/// The models a `--select` expression names.
pub fn select(nodes: &BTreeMap<String, Node>, expr: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for part in expr.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ancestors = part.starts_with('+');
        let descendants = part.ends_with('+');
        let name = part.trim_matches('+');
        if !nodes.contains_key(name) {
            return Err(Error::Config(format!(
                "--select: no model named {name} (models: {})",
                nodes.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        out.insert(name.to_owned());
        if ancestors {
            walk(name, &mut out, |n| {
                nodes[n].depends_on.iter().cloned().collect()
            });
        }
        if descendants {
            walk(name, &mut out, |n| {
                nodes
                    .values()
                    .filter(|c| c.depends_on.contains(n))
                    .map(|c| c.model.name.clone())
                    .collect()
            });
        }
    }
    Ok(out)
}

fn walk(start: &str, out: &mut BTreeSet<String>, next: impl Fn(&str) -> Vec<String>) {
    let mut stack = vec![start.to_owned()];
    while let Some(n) = stack.pop() {
        for m in next(&n) {
            if out.insert(m.clone()) {
                stack.push(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, sql: &str) -> Model {
        Model {
            name: name.into(),
            path: format!("{name}.sql"),
            sql: sql.into(),
            seed: None,
        }
    }

    #[test]
    fn default_models_order_follows_their_references() {
        let nodes = build(crate::models::default_models()).unwrap();
        assert!(nodes["identity_graph"].depends_on.contains("identifiers"));
        let order = order(&nodes).unwrap();
        let pos = |n: &str| order.iter().position(|m| m == n).unwrap();
        assert!(pos("identifiers") < pos("identity_graph"));
        assert!(pos("identity_map") < pos("profiles"));
        assert!(pos("orders_unified") < pos("profiles"));
    }

    #[test]
    fn ctes_shadow_models_and_cycles_are_refused() {
        let nodes = build(vec![
            model("a", "WITH b AS (SELECT 1) SELECT * FROM b"),
            model("b", "SELECT 1"),
        ])
        .unwrap();
        assert!(nodes["a"].depends_on.is_empty());
        let cyclic = build(vec![
            model("a", "SELECT * FROM b"),
            model("b", "SELECT * FROM a"),
        ])
        .unwrap();
        assert!(matches!(order(&cyclic), Err(Error::ModelCycle(_))));
    }

    #[test]
    fn select_walks_the_graph() {
        let nodes = build(crate::models::default_models()).unwrap();
        let up = select(&nodes, "+identity_map").unwrap();
        assert!(
            up.contains("identifiers") && up.contains("identity_graph") && !up.contains("profiles")
        );
        let down = select(&nodes, "identity_map+").unwrap();
        assert!(down.contains("profiles") && !down.contains("identifiers"));
        assert!(select(&nodes, "nope").is_err());
    }

    #[test]
    fn syntax_errors_name_the_model_and_position() {
        let err = build(vec![model("bad", "SELECT a\nFROM t\nWHERE a = )")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("model bad (bad.sql)"), "{err}");
        assert!(err.contains("Line: 3"), "{err}");
    }
}
