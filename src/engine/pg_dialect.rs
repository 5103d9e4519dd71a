//! Rewrites of PostgreSQL syntax that DataFusion does not plan, applied to
//! the parsed statement so every client's SQL reaches the planner in a form
//! it understands:
//!
//! - `a OPERATOR(pg_catalog.~) b` → `a ~ b` (psql's `\d`);
//! - `x COLLATE "C"` / `COLLATE pg_catalog.default` → `x`;
//! - `pg_catalog.f(…)` → `f(…)` (functions live in one namespace here);
//! - casts to `regclass`, `regtype`, `regnamespace`, `regproc` → lookups:
//!   a text literal becomes its OID, any other value the object's name;
//! - casts to `oid` → `INT UNSIGNED` (OIDs are unsigned 32-bit), to `name`,
//!   `"char"`, `bpchar`, `pg_catalog.text` → text.
//!
//! And one planning fallback: PostgreSQL allows a correlated scalar subquery
//! that is not aggregated (it errors at run time if it yields two rows);
//! DataFusion refuses to plan it, so on that error the planner retries with
//! the subquery's single column wrapped in `max()`.

use std::ops::ControlFlow;

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    Value, visit_expressions_mut,
};

pub fn rewrite(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |expr| {
        rewrite_expr(expr);
        ControlFlow::<()>::Continue(())
    });
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        Expr::Collate { expr: inner, .. } => {
            let inner = std::mem::replace(inner.as_mut(), Expr::Value(Value::Null.into()));
            *expr = inner;
        }
        Expr::BinaryOp { op, .. } => {
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op
                && let Some(mapped) = parts.last().and_then(|o| builtin_operator(o))
            {
                *op = mapped;
            }
        }
        Expr::Function(Function { name, .. }) => {
            if name.0.len() == 2 && last_ident(name).is_some() && first_ident_is(name, "pg_catalog")
            {
                name.0.remove(0);
            }
        }
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => {
            let type_name = match data_type {
                DataType::Regclass => Some("regclass".to_owned()),
                DataType::Custom(name, _) => last_ident(name).map(|s| s.to_ascii_lowercase()),
                DataType::Text => Some("text".to_owned()),
                _ => None,
            };
            let Some(type_name) = type_name else { return };
            let is_literal = matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
            let lookup = |f: &str, arg: Expr| call(f, vec![arg]);
            let replacement = match type_name.as_str() {
                "regclass" if is_literal => Some(lookup("regclass_oid", (**inner).clone())),
                "regclass" => Some(lookup("regclass_name", (**inner).clone())),
                "regtype" if is_literal => Some(lookup("regtype_oid", (**inner).clone())),
                "regtype" => Some(call(
                    "format_type",
                    vec![(**inner).clone(), Expr::Value(Value::Null.into())],
                )),
                "regnamespace" if is_literal => Some(lookup("regnamespace_oid", (**inner).clone())),
                "regnamespace" => Some(lookup("regnamespace_name", (**inner).clone())),
                "regproc" | "regprocedure" => Some(lookup("regproc_name", (**inner).clone())),
                _ => None,
            };
            if let Some(r) = replacement {
                *expr = r;
                return;
            }
            match type_name.as_str() {
                "oid" | "regoper" | "xid" | "cid" => *data_type = DataType::IntUnsigned(None),
                "name" | "char" | "bpchar" | "text" | "citext" => *data_type = DataType::Text,
                "int2vector" | "oidvector" => *data_type = DataType::Text,
                _ => {}
            }
        }
        _ => {}
    }
}

fn builtin_operator(op: &str) -> Option<BinaryOperator> {
    Some(match op {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        ">" => BinaryOperator::Gt,
        "<=" => BinaryOperator::LtEq,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "||" => BinaryOperator::StringConcat,
        "~~" => return None,
        _ => return None,
    })
}

fn last_ident(name: &ObjectName) -> Option<&str> {
    name.0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|i| i.value.as_str())
}

fn first_ident_is(name: &ObjectName, want: &str) -> bool {
    name.0
        .first()
        .and_then(ObjectNamePart::as_ident)
        .is_some_and(|i| i.value.eq_ignore_ascii_case(want))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

pub fn is_unaggregated_scalar_subquery_error(e: &DataFusionError) -> bool {
    e.to_string().contains("must be aggregated")
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
];

/// Wraps the single column of every non-aggregated scalar subquery in max().
pub fn aggregate_scalar_subqueries(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |expr| {
        if let Expr::Subquery(query) = expr {
            aggregate_query(query);
        }
        ControlFlow::<()>::Continue(())
    });
}

fn aggregate_query(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let no_group_by = match &select.group_by {
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) => e.is_empty(),
        datafusion::sql::sqlparser::ast::GroupByExpr::All(_) => false,
    };
    if !no_group_by || select.projection.len() != 1 {
        return;
    }
    let target = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(e) => e,
        SelectItem::ExprWithAlias { expr, .. } => expr,
        _ => return,
    };
    if let Expr::Function(f) = target
        && last_ident(&f.name)
            .is_some_and(|n| AGGREGATES.contains(&n.to_ascii_lowercase().as_str()))
    {
        return;
    }
    let inner = std::mem::replace(target, Expr::Value(Value::Null.into()));
    *target = call("max", vec![inner]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn psql_describe_syntax_becomes_plain_sql() {
        let sql = rewritten(
            "SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(profiles)$' COLLATE pg_catalog.default \
             AND pg_catalog.pg_table_is_visible(c.oid) AND c.oid = 'profiles'::regclass",
        );
        assert_eq!(
            sql,
            "SELECT regclass_name(c.oid) FROM pg_catalog.pg_class c WHERE c.relname ~ '^(profiles)$' \
             AND pg_table_is_visible(c.oid) AND c.oid = regclass_oid('profiles')"
        );
    }

    #[test]
    fn unaggregated_scalar_subquery_gets_max() {
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT (SELECT x FROM t WHERE t.a = u.a) FROM u",
        )
        .unwrap()
        .remove(0);
        aggregate_scalar_subqueries(&mut stmt);
        assert_eq!(
            stmt.to_string(),
            "SELECT (SELECT max(x) FROM t WHERE t.a = u.a) FROM u"
        );
    }
}
