//! `has_*_privilege`: every role that can connect may read every object
//! (roles with narrower rights come with authentication, see the server).

use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::datatypes::DataType;

use super::PgFn;
use crate::catalog::Catalog;

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
    ]
    .into_iter()
    .map(|name| {
        PgFn::new(
            name,
            &[2, 3, 4],
            DataType::Boolean,
            |c| Ok(Arc::new(BooleanArray::from(vec![true; c.rows]))),
            catalog,
        )
    })
    .collect()
}
