//! Which relation an unqualified name means, as PostgreSQL decides it:
//! the session's temporary tables first, then `pg_catalog` (searched
//! before the search path unless named in it), then the search path
//! (DataFusion's default schema). The first two are settled here by
//! qualifying the names in the statement before DataFusion plans it;
//! `pg_temp.name` also becomes the session's temporary schema. Names of
//! common table expressions are left alone.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, Statement, Visit, Visitor, visit_relations_mut,
};

use super::temp_tables::{TEMP_ALIAS, TempTables};
use crate::catalog::{Snapshot, pg_catalog};

/// Qualifies the relation names of `stmt` that mean a temporary table or
/// a `pg_catalog` table.
pub fn qualify_relations(stmt: &mut Statement, snap: &Snapshot, temp: &TempTables) {
    let mut ctes = CteNames::default();
    let _ = stmt.visit(&mut ctes);
    let _ = visit_relations_mut(stmt, |name: &mut ObjectName| {
        let is_cte = matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|n| ctes.0.contains(&fold(n))));
        if !is_cte {
            qualify_name(name, snap, temp);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Qualifies `name` if it means a temporary table (unqualified, or as
/// `pg_temp.name`) or a `pg_catalog` table; other names stay as written.
pub fn qualify_name(name: &mut ObjectName, snap: &Snapshot, temp: &TempTables) {
    let parts: Vec<Option<&Ident>> = name.0.iter().map(ObjectNamePart::as_ident).collect();
    let qualified = match parts.as_slice() {
        [Some(n)] if temp.has(snap, &fold(n)) => Some((temp.schema(), (*n).clone())),
        [Some(n)] if pg_catalog::is_catalog_table(&fold(n)) => Some(("pg_catalog", (*n).clone())),
        [Some(s), Some(n)] if fold(s) == TEMP_ALIAS => Some((temp.schema(), (*n).clone())),
        _ => None,
    };
    if let Some((schema, n)) = qualified {
        *name = ObjectName::from(vec![Ident::new(schema), n]);
    }
}

/// The names the statement's `WITH` clauses define.
#[derive(Default)]
struct CteNames(HashSet<String>);

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.insert(fold(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }
}

/// An identifier as PostgreSQL folds it.
pub fn fold(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}
