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
    ArrayElemTypeDef, BinaryOperator, CastKind, DataType, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, JoinOperator, LimitClause,
    ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, TableAliasColumnDef,
    TableFactor, Value, Visit, VisitMut, Visitor, VisitorMut, visit_expressions,
    visit_expressions_mut,
};

pub fn rewrite(stmt: &mut Statement) {
    // Names first: PostgreSQL names columns after the SQL as written.
    let _ = stmt.visit(&mut PgColumnNames);
    name_columns_beside_wildcards(stmt);
    let _ = stmt.visit(&mut FunctionsInFrom);
    let _ = stmt.visit(&mut OrderBySubqueries);
    let _ = stmt.visit(&mut InSubqueriesInSelectLists);
    let _ = visit_expressions_mut(stmt, |expr| {
        rewrite_expr(expr);
        ControlFlow::<()>::Continue(())
    });
    fold_empty_catalog_subqueries(stmt);
}

/// Functions in FROM as PostgreSQL reads them. A function returning one
/// column, aliased `AS x`, gives both the relation and its column the name
/// `x` (`generate_series(1, 3) AS i` then `SELECT i`). A function that
/// returns a plain value (`string_to_array(…) s`) is a one-row relation;
/// DataFusion only takes table functions there, so it becomes
/// `(SELECT string_to_array(…) AS s) AS s`. Grafana's table picker sends
/// both.
struct FunctionsInFrom;

/// Set-returning functions of one column.
const ONE_COLUMN_TABLE_FUNCTIONS: &[&str] = &["generate_series", "generate_subscripts", "unnest"];
/// Functions returning one value, which PostgreSQL also takes in FROM.
const VALUE_FUNCTIONS_IN_FROM: &[&str] = &[
    "string_to_array",
    "regexp_split_to_array",
    "current_schemas",
    "parse_ident",
];

impl VisitorMut for FunctionsInFrom {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // unnest(array) AS x: x names the column too.
        if let TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            ..
        } = factor
            && alias.columns.is_empty()
            && array_exprs.len() == 1
        {
            alias.columns.push(TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            });
            return ControlFlow::Continue(());
        }
        // pg_catalog.pg_get_keywords() is the function pg_get_keywords(),
        // information_schema._pg_expandarray(…) _pg_expandarray(…).
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
            && name.0.len() == 2
            && (first_ident_is(name, "pg_catalog") || first_ident_is(name, "information_schema"))
        {
            name.0.remove(0);
        }
        let TableFactor::Table {
            name,
            args: Some(args),
            alias: Some(alias),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some(function) = last_ident(name).map(str::to_ascii_lowercase) else {
            return ControlFlow::Continue(());
        };
        if !alias.columns.is_empty() {
            return ControlFlow::Continue(());
        }
        if ONE_COLUMN_TABLE_FUNCTIONS.contains(&function.as_str()) {
            alias.columns.push(TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            });
        } else if VALUE_FUNCTIONS_IN_FROM.contains(&function.as_str()) {
            let call = Expr::Function(Function {
                name: name.clone(),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: args.args.clone(),
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
            let select = format!("SELECT {call} AS {}", alias.name);
            let Ok(mut parsed) = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                &select,
            ) else {
                return ControlFlow::Continue(());
            };
            if let Some(Statement::Query(subquery)) = parsed.pop() {
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery,
                    alias: Some(alias.clone()),
                    sample: None,
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// ORDER BY expressions with subqueries, which DataFusion cannot sort by
/// (Grafana's table picker orders by `CASE WHEN … IN (SELECT …)`): the
/// query computes them as extra columns, and an outer query sorts by
/// them and returns the original columns:
/// `SELECT a FROM t ORDER BY f(subquery), 1` becomes
/// `SELECT "a" FROM (SELECT a, f(subquery) AS "?order1" FROM t) AS "?ordered"
/// ORDER BY "?order1", 1`. Only for a plain SELECT whose columns all have
/// names.
struct OrderBySubqueries;

impl VisitorMut for OrderBySubqueries {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(rewritten) = order_by_subqueries(query) {
            *query = rewritten;
        }
        ControlFlow::Continue(())
    }
}

fn order_by_subqueries(query: &Query) -> Option<Query> {
    let order = match &query.order_by.as_ref()?.kind {
        datafusion::sql::sqlparser::ast::OrderByKind::Expressions(e) => e,
        datafusion::sql::sqlparser::ast::OrderByKind::All(_) => return None,
    };
    let has_subquery = |e: &Expr| {
        let mut found = false;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
            if matches!(
                x,
                Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. }
            ) {
                found = true;
            }
            ControlFlow::<()>::Continue(())
        });
        found
    };
    if !order.iter().any(|o| has_subquery(&o.expr)) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let names: Vec<Ident> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut inner = query.clone();
    inner.order_by = None;
    inner.limit_clause = None;
    inner.fetch = None;
    let SetExpr::Select(inner_select) = inner.body.as_mut() else {
        return None;
    };
    let mut keys = Vec::new();
    for (k, o) in order.iter().enumerate() {
        let positional = matches!(&o.expr, Expr::Value(v) if matches!(v.value, Value::Number(..)));
        if positional {
            keys.push(o.to_string());
            continue;
        }
        let alias = Ident::with_quote('"', format!("?order{}", k + 1));
        inner_select.projection.push(SelectItem::ExprWithAlias {
            expr: o.expr.clone(),
            alias: alias.clone(),
        });
        let mut key = o.clone();
        key.expr = Expr::Identifier(alias);
        keys.push(key.to_string());
    }
    let columns = names
        .iter()
        .map(|n| format!("\"{}\"", n.value.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "SELECT {columns} FROM ({inner}) AS \"?ordered\" ORDER BY {}",
        keys.join(", ")
    );
    if let Some(limit) = &query.limit_clause {
        sql.push_str(&format!(" {limit}"));
    }
    let mut parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
        &sql,
    )
    .ok()?;
    match parsed.pop()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

/// `x IN (SELECT v …)` in a select list, which DataFusion only plans in
/// a WHERE clause, becomes `array_has((SELECT array_agg(v) …), x)`: the
/// subquery once, as an array (a value no NULL `v` can match, as with IN
/// when `x` is found; where IN would answer NULL this answers false).
struct InSubqueriesInSelectLists;

impl VisitorMut for InSubqueriesInSelectLists {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            let _ = visit_expressions_mut(expr, |e| {
                if let Expr::InSubquery {
                    expr,
                    subquery,
                    negated,
                } = e
                    && let Some(replacement) = in_subquery_as_array(expr, subquery, *negated)
                {
                    *e = replacement;
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

fn in_subquery_as_array(expr: &Expr, subquery: &Query, negated: bool) -> Option<Expr> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1 {
        return None;
    }
    let not = if negated { "NOT " } else { "" };
    let sql = format!(
        "{not}coalesce(array_has((SELECT array_agg(\"?v\") FROM ({subquery}) AS \"?in\"(\"?v\")), {expr}), false)"
    );
    datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(&sql)
    .ok()?
    .parse_expr()
    .ok()
}

/// Names unaliased select items as PostgreSQL does: a function call after
/// the function (`count(*)` → `count`), a cast after what it casts, any
/// other expression `?column?`. Only where the name stays unique, because
/// DataFusion refuses duplicate column names.
struct PgColumnNames;

impl VisitorMut for PgColumnNames {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut body = query.body.as_mut();
        while let SetExpr::SetOperation { left, .. } = body {
            body = left.as_mut();
        }
        let SetExpr::Select(select) = body else {
            return ControlFlow::Continue(());
        };
        let names: Vec<Option<String>> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => pg_column_name(e),
                _ => None,
            })
            .collect();
        let taken: Vec<String> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.to_lowercase()),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                    parts.last().map(|i| i.value.to_lowercase())
                }
                _ => None,
            })
            .collect();
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name else { continue };
            let clashes = taken.contains(name)
                || names
                    .iter()
                    .enumerate()
                    .any(|(j, n)| j != i && n.as_ref() == Some(name));
            if clashes {
                continue;
            }
            if let SelectItem::UnnamedExpr(e) = &select.projection[i] {
                select.projection[i] = SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: Ident::with_quote('"', name.clone()),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// Marks a column name made unique for DataFusion; the wire protocol
/// sends the name without it ([`output_name`]).
const DUPLICATE_NAME_MARK: char = '\u{1f}';

/// The name a client sees for an output column.
pub fn output_name(name: &str) -> &str {
    name.split(DUPLICATE_NAME_MARK).next().unwrap_or(name)
}

/// `SELECT c.oid, c.* FROM pg_class c` (DBeaver's form) names `oid`
/// twice, which PostgreSQL allows and DataFusion refuses. Beside a
/// wildcard, the outer query's plain column references get a name made
/// unique with [`DUPLICATE_NAME_MARK`], which the client never sees.
fn name_columns_beside_wildcards(stmt: &mut Statement) {
    let Statement::Query(query) = stmt else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let wildcard = select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    if !wildcard {
        return;
    }
    for (i, item) in select.projection.iter_mut().enumerate() {
        let name = match item {
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => super::search_path::fold(id),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => match parts.last() {
                Some(id) => super::search_path::fold(id),
                None => continue,
            },
            _ => continue,
        };
        if let SelectItem::UnnamedExpr(e) = item {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', format!("{name}{DUPLICATE_NAME_MARK}{i}")),
            };
        }
    }
}

/// PostgreSQL's name for an unaliased expression; None for column references
/// (already named) and wildcards.
fn pg_column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        Expr::Function(f) => last_ident(&f.name).map(str::to_lowercase),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => match expr.as_ref() {
            Expr::Identifier(i) => Some(i.value.to_lowercase()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_lowercase()),
            inner => pg_column_name(inner),
        },
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        _ => Some("?column?".into()),
    }
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        // An array literal, '{a,b}'::text[], as ARRAY['a', 'b']::text[]
        // (DataFusion would make a one-element array of the text).
        Expr::Cast {
            expr: inner,
            data_type: DataType::Array(_),
            ..
        } if matches!(inner.as_ref(), Expr::Value(v) if matches!(&v.value, Value::SingleQuotedString(s) if s.starts_with('{'))) =>
        {
            let Expr::Value(v) = inner.as_ref() else {
                return;
            };
            let Value::SingleQuotedString(text) = &v.value else {
                return;
            };
            if let Some(elements) = array_literal(text) {
                **inner = Expr::Array(datafusion::sql::sqlparser::ast::Array {
                    elem: elements
                        .into_iter()
                        .map(|e| {
                            Expr::Value(e.map_or(Value::Null, Value::SingleQuotedString).into())
                        })
                        .collect(),
                    named: true,
                });
            }
        }
        // DataFusion's LIKE escapes with a backslash only; SQLAlchemy
        // sends `NOT LIKE 'pg/_' || '%' ESCAPE '/'`.
        Expr::Like {
            pattern,
            escape_char: escape @ Some(_),
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char: escape @ Some(_),
            ..
        } => {
            let escape_with = match escape.as_ref().map(|v| &v.value) {
                Some(Value::SingleQuotedString(e)) => e.chars().collect::<Vec<_>>(),
                _ => return,
            };
            if let ([c], Some(text)) = (escape_with.as_slice(), literal_text(pattern)) {
                **pattern =
                    Expr::Value(Value::SingleQuotedString(backslash_escaped(&text, *c)).into());
                *escape = None;
            }
        }
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
        Expr::Function(Function { name, .. })
            if name.0.len() == 2
                && last_ident(name).is_some()
                && first_ident_is(name, "pg_catalog") =>
        {
            name.0.remove(0);
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

/// The elements of a one-dimensional PostgreSQL array literal (`{a,"b c",NULL}`).
fn array_literal(text: &str) -> Option<Vec<Option<String>>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if body.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut element = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => element.push(chars.next()?),
                    '"' => break,
                    c => element.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None;
                }
                element.push(c);
                chars.next();
            }
            element = element.trim().to_owned();
        }
        let null = !quoted && element.eq_ignore_ascii_case("null");
        out.push((!null).then_some(element));
        match chars.next() {
            Some(',') => {}
            None => return Some(out),
            Some(_) => return None,
        }
    }
}

/// The text of a string literal, or of `||` between string literals.
fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Nested(inner) => literal_text(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            right,
        } => Some(literal_text(left)? + &literal_text(right)?),
        _ => None,
    }
}

/// A LIKE pattern written with `escape` restated with a backslash.
fn backslash_escaped(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        if ch == escape {
            if let Some(next) = chars.next() {
                out.push('\\');
                out.push(next);
            }
        } else if ch == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(ch);
        }
    }
    out
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

/// Folds subqueries that read an always-empty pg_catalog table in their FROM
/// list: a scalar subquery becomes NULL, `EXISTS` false, `NOT EXISTS` true.
/// Exact, because those tables have no rows, and it spares DataFusion the
/// correlated subqueries it cannot decorrelate (psql's `\d` sends them).
pub fn fold_empty_catalog_subqueries(stmt: &mut Statement) {
    let _ = stmt.visit(&mut EmptyCatalogSelects);
    let _ = visit_expressions_mut(stmt, |expr| {
        match expr {
            Expr::Subquery(q) if reads_empty_catalog(q) => *expr = Expr::Value(Value::Null.into()),
            // ARRAY(subquery) of no rows; NULL stands for the empty array
            // (only option and ACL lists, which are NULL here, get this).
            Expr::Function(f)
                if f.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(&f.args, FunctionArguments::Subquery(q) if reads_empty_catalog(q)) =>
            {
                *expr = Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::Value(Value::Null.into())),
                    data_type: DataType::Array(ArrayElemTypeDef::SquareBracket(
                        Box::new(DataType::Text),
                        None,
                    )),
                    array: false,
                    format: None,
                };
            }
            Expr::Exists { subquery, negated } if reads_empty_catalog(subquery) => {
                *expr = Expr::Value(Value::Boolean(*negated).into());
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A SELECT over an always-empty catalog table returns no rows whatever its
/// select list says: its WHERE becomes `false`, and every select item but a
/// plain column becomes NULL under the same name (so functions and
/// subqueries DataFusion could not plan are never planned).
struct EmptyCatalogSelects;

impl VisitorMut for EmptyCatalogSelects {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if reads_empty_catalog(query) {
            // No rows: no order to keep (and its expressions may name
            // columns the folded select list no longer has).
            query.order_by = None;
        }
        fold_set_expr(query.body.as_mut());
        ControlFlow::Continue(())
    }
}

fn fold_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            fold_set_expr(left);
            fold_set_expr(right);
        }
        SetExpr::Select(select) if select_reads_empty_catalog(select) => fold_select(select),
        _ => {}
    }
}

fn fold_select(select: &mut Select) {
    select.selection = Some(Expr::Value(Value::Boolean(false).into()));
    let mut used = std::collections::HashSet::new();
    for item in &mut select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (
                e.clone(),
                Ident::with_quote('"', pg_column_name(e).unwrap_or_else(|| "?column?".into())),
            ),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.clone()),
            _ => continue,
        };
        let mut alias = alias;
        while !used.insert(alias.value.clone()) {
            alias = Ident::with_quote('"', format!("{}_", alias.value));
        }
        if !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            *item = SelectItem::ExprWithAlias {
                expr: Expr::Value(Value::Null.into()),
                alias,
            };
        }
    }
}

/// Option and ACL list columns of pg_catalog, which are NULL here.
fn always_null_list(column: &str) -> bool {
    column.ends_with("options") || column.ends_with("acl")
}

fn reads_empty_catalog(q: &Query) -> bool {
    matches!(q.body.as_ref(), SetExpr::Select(select) if select_reads_empty_catalog(select))
}

fn select_reads_empty_catalog(select: &Select) -> bool {
    select.from.iter().any(|twj| {
        let inner_joined = twj.joins.iter().filter(|j| {
            matches!(
                j.join_operator,
                JoinOperator::Inner(_) | JoinOperator::Join(_)
            )
        });
        std::iter::once(&twj.relation)
            .chain(inner_joined.map(|j| &j.relation))
            .any(|rel| match rel {
                // unnest(x.reloptions), unnest(x.relacl): always NULL here.
                TableFactor::Table {
                    name,
                    args: Some(args),
                    ..
                } => {
                    last_ident(name) == Some("unnest")
                        && matches!(args.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Expr(
                            Expr::CompoundIdentifier(p)))]
                            if p.last().is_some_and(|i| always_null_list(&i.value)))
                }
                TableFactor::Table { name, .. } => {
                    let parts: Vec<&str> = name
                        .0
                        .iter()
                        .filter_map(ObjectNamePart::as_ident)
                        .map(|i| i.value.as_str())
                        .collect();
                    match parts.as_slice() {
                        [t] | ["pg_catalog", t] => crate::catalog::pg_catalog::always_empty(t),
                        _ => false,
                    }
                }
                _ => false,
            })
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

/// The types PostgreSQL gives parameters DataFusion cannot type: `LIMIT
/// $1` / `OFFSET $1` (bigint), and arguments of system functions that take
/// `integer` or `oid` (DataFusion infers no types from function
/// arguments, and drivers send binary values of the declared type).
pub fn placeholder_types(stmt: &Statement) -> Vec<(usize, datafusion::arrow::datatypes::DataType)> {
    use datafusion::arrow::datatypes::DataType as T;
    /// Functions and the types of their leading arguments.
    const TYPED: &[(&str, &[T])] = &[
        ("pg_cancel_backend", &[T::Int32]),
        ("pg_terminate_backend", &[T::Int32, T::Int64]),
        ("format_type", &[T::UInt32, T::Int32]),
        ("col_description", &[T::UInt32, T::Int32]),
        ("obj_description", &[T::UInt32, T::Utf8]),
        ("pg_get_indexdef", &[T::UInt32, T::Int32, T::Boolean]),
        ("pg_get_constraintdef", &[T::UInt32, T::Boolean]),
        ("pg_get_viewdef", &[T::UInt32, T::Boolean]),
        ("pg_get_userbyid", &[T::UInt32]),
        ("pg_table_is_visible", &[T::UInt32]),
        ("pg_type_is_visible", &[T::UInt32]),
        ("pg_function_is_visible", &[T::UInt32]),
    ];
    fn number(e: &Expr) -> Option<usize> {
        match e {
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }
    struct Typed(Vec<(usize, T)>);
    impl Visitor for Typed {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            let exprs: Vec<&Expr> = match &query.limit_clause {
                Some(LimitClause::LimitOffset { limit, offset, .. }) => limit
                    .iter()
                    .chain(offset.as_ref().map(|o| &o.value))
                    .collect(),
                Some(LimitClause::OffsetCommaLimit { offset, limit }) => vec![offset, limit],
                None => Vec::new(),
            };
            self.0
                .extend(exprs.into_iter().filter_map(number).map(|n| (n, T::Int64)));
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(Function {
                name,
                args: FunctionArguments::List(list),
                ..
            }) = expr
                && let Some(f) = last_ident(name)
                && let Some((_, types)) = TYPED.iter().find(|(n, _)| f.eq_ignore_ascii_case(n))
            {
                for (arg, ty) in list.args.iter().zip(types.iter()) {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg
                        && let Some(n) = number(e)
                    {
                        self.0.push((n, ty.clone()));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut typed = Typed(Vec::new());
    let _ = stmt.visit(&mut typed);
    typed.0
}

/// What only the session knows, for [`substitute_session_values`].
pub struct SessionValues<'a, F: Fn(&str) -> Option<String>> {
    pub user: &'a str,
    pub backend_pid: i32,
    /// The OID of the session's temporary schema.
    pub temp_namespace: u32,
    pub setting: F,
}

/// The `set_config('name', 'value', is_local)` calls of `stmt` with
/// literal arguments, as `(name, value)`: the session applies them before
/// the query runs (for the session, also when `is_local`, as there are no
/// transactions to end them).
pub fn set_config_calls(stmt: &Statement) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    let _ = visit_expressions(stmt, |expr| {
        if let Expr::Function(Function {
            name,
            args: FunctionArguments::List(list),
            ..
        }) = expr
            && name.0.len() == 1
            && last_ident(name).is_some_and(|n| n.eq_ignore_ascii_case("set_config"))
            && let [n, v, _] = literal_args(&list.args).as_slice()
            && let (Some(n), Some(v)) = (n, v)
        {
            calls.push((n.clone(), v.clone()));
        }
        ControlFlow::<()>::Continue(())
    });
    calls
}

/// Appends the number `value` to a call's arguments.
fn append_arg(args: &mut FunctionArguments, value: String) {
    if let FunctionArguments::List(list) = args {
        list.args
            .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                Value::Number(value, false).into(),
            ))));
    }
}

/// The arguments as text literals (`None` where one is not a literal).
fn literal_args(args: &[FunctionArg]) -> Vec<Option<String>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                Value::Boolean(b) => Some(b.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Replaces what only the session knows with its value, as literals:
/// `current_user`, `session_user` and `user` with the user;
/// `current_setting('name' [, missing_ok])` with the setting — NULL for an
/// unknown setting when `missing_ok`, an error otherwise;
/// `set_config(name, value, _)` with the value it set (see
/// [`set_config_calls`]); `pg_backend_pid()` with the session's id and
/// `pg_my_temp_schema()` with its temporary schema's OID (which
/// `pg_is_other_temp_schema(oid)` also gets as a second argument). Runs
/// just before a query is planned, so it sees the settings of the
/// statements before it.
pub fn substitute_session_values<F: Fn(&str) -> Option<String>>(
    stmt: &mut Statement,
    session: &SessionValues<'_, F>,
) -> Result<(), String> {
    let (user, setting) = (session.user, &session.setting);
    let text = |s: Option<String>| {
        let value = match s {
            Some(s) => Value::SingleQuotedString(s),
            None => Value::Null,
        };
        Expr::Cast {
            kind: CastKind::DoubleColon,
            expr: Box::new(Expr::Value(value.into())),
            data_type: DataType::Text,
            array: false,
            format: None,
        }
    };
    let mut failed = None;
    let _ = visit_expressions_mut(stmt, |expr| {
        let Expr::Function(Function { name, args, .. }) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let (Some(fname), 1) = (last_ident(name), name.0.len()) else {
            return ControlFlow::Continue(());
        };
        let fname = fname.to_ascii_lowercase();
        let literals = match args {
            FunctionArguments::None => Vec::new(),
            FunctionArguments::List(FunctionArgumentList { args, .. }) => literal_args(args),
            FunctionArguments::Subquery(_) => return ControlFlow::Continue(()),
        };
        match (fname.as_str(), literals.as_slice()) {
            ("current_user" | "session_user" | "user", []) => *expr = text(Some(user.to_owned())),
            // integer, as in PostgreSQL (drivers read it as an i32).
            ("pg_backend_pid", []) => {
                *expr = Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::Value(
                        Value::Number(session.backend_pid.to_string(), false).into(),
                    )),
                    data_type: DataType::Integer(None),
                    array: false,
                    format: None,
                };
            }
            ("set_config", [_, Some(v), _]) => *expr = text(Some(v.clone())),
            ("pg_my_temp_schema", []) => {
                *expr =
                    Expr::Value(Value::Number(session.temp_namespace.to_string(), false).into());
            }
            // The UDF takes the session's own temporary schema as well.
            ("pg_is_other_temp_schema", [_]) => {
                append_arg(args, session.temp_namespace.to_string());
            }
            // The registry checks who sends the signal (`udf::pg::signals`).
            ("pg_cancel_backend", [_]) | ("pg_terminate_backend", [_] | [_, _]) => {
                append_arg(args, session.backend_pid.to_string());
            }
            ("current_setting", [Some(n)]) | ("current_setting", [Some(n), _]) => {
                let missing_ok = literals.get(1).and_then(Option::as_deref) == Some("true");
                match setting(n) {
                    Some(v) => *expr = text(Some(v)),
                    None if missing_ok => *expr = text(None),
                    None => {
                        failed = Some(format!("unrecognized configuration parameter \"{n}\""));
                        return ControlFlow::Break(());
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    failed.map_or(Ok(()), Err)
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
    fn array_literals_become_arrays() {
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE w <> ALL ('{a, \"b c\",NULL}'::text[])"),
            "SELECT 1 AS \"?column?\" FROM t WHERE w <> ALL(ARRAY['a', 'b c', NULL]::TEXT[])"
        );
        assert_eq!(array_literal("{}"), Some(vec![]));
        assert_eq!(array_literal("{a,{b}}"), None);
    }

    #[test]
    fn like_escapes_become_backslashes() {
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/'"),
            "SELECT 1 AS \"?column?\" FROM t WHERE n NOT LIKE 'pg\\_%'"
        );
        assert_eq!(backslash_escaped("a!%b\\c!!", '!'), "a\\%b\\\\c\\!");
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
            "SELECT regclass_name(c.oid) AS \"oid\" FROM pg_catalog.pg_class c WHERE c.relname ~ '^(profiles)$' \
             AND pg_table_is_visible(c.oid) AND c.oid = regclass_oid('profiles')"
        );
    }

    #[test]
    fn unaliased_expressions_get_postgres_names() {
        assert_eq!(
            rewritten("SELECT count(*), x::text, 1, a.b, sum(y) AS s FROM t"),
            "SELECT count(*) AS \"count\", x::TEXT AS \"x\", 1 AS \"?column?\", a.b, sum(y) AS s FROM t"
        );
        // Duplicates keep DataFusion's distinct names.
        assert_eq!(
            rewritten("SELECT count(a), count(b) FROM t"),
            "SELECT count(a), count(b) FROM t"
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
