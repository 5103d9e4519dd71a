//! profiledb's SQL functions, one per file, registered by [`register_all`].
//!
//! | function | kind | what |
//! |---|---|---|
//! | `normalize_email(text)` | scalar | canonical mailbox or NULL |
//! | `normalize_phone(text [, country])` | scalar | E.164 or NULL |
//! | `json_get_str(json, key, ...)` | scalar | text at a JSON path |
//! | `resolve_identities('occurrences' [, 'rules'])` | table | identity resolution |
//! | `explain_identity('type:value', 'type:value')` | table | the chain that joins two identifiers, or why not |
//! | `funnel('7 days', 'step', 'step', …)` | table | profiles reaching each step in order, drop-off |
//! | `paths_after('event' [, depth])` | table | the paths people take after an event |
//! | `cohort_retention(['day' \| 'week' \| 'month'])` | table | share of each first-activity cohort active later |
//!
//! Scalar kernels are vectorised over Arrow arrays and NULL-correct: a NULL
//! input, or one that cannot be normalised, gives NULL.

mod analyses;
mod explain_identity;
mod graph_index;
mod json_get_str;
mod normalize_email;
mod normalize_phone;
pub mod occurrence_index;
pub mod pg;
mod resolve_identities;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::catalog::Catalog;

pub use explain_identity::ExplainIdentityFunc;
pub use json_get_str::JsonGetStrUdf;
pub use normalize_email::{NormalizeEmailUdf, normalize_email};
pub use normalize_phone::{NormalizePhoneUdf, normalize_phone};
pub use resolve_identities::ResolveIdentitiesFunc;

/// Registers every profiledb function (and the PostgreSQL system functions
/// clients call) on `ctx`.
pub fn register_all(ctx: &SessionContext, catalog: &Arc<Catalog>) {
    pg::register_all(ctx, catalog);
    ctx.register_udf(ScalarUDF::new_from_impl(NormalizeEmailUdf::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(NormalizePhoneUdf::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonGetStrUdf::new()));
    ctx.register_udtf(
        "resolve_identities",
        Arc::new(ResolveIdentitiesFunc::new(Arc::clone(catalog))),
    );
    ctx.register_udtf("explain_identity", Arc::new(ExplainIdentityFunc));
    ctx.register_udtf("funnel", Arc::new(analyses::FunnelFunc));
    ctx.register_udtf("paths_after", Arc::new(analyses::PathsAfterFunc));
    ctx.register_udtf("cohort_retention", Arc::new(analyses::CohortRetentionFunc));
}

/// Applies `f` to every non-NULL string of `arg` (any string type); `f`
/// writes its answer into the reused buffer and returns false for NULL.
pub(crate) fn map_strings(
    arg: &ColumnarValue,
    number_rows: usize,
    mut f: impl FnMut(&str, &mut String) -> bool,
) -> Result<ColumnarValue> {
    let array: ArrayRef = match arg {
        ColumnarValue::Array(a) => cast(a, &DataType::Utf8)?,
        ColumnarValue::Scalar(s) => {
            let a = s.to_array_of_size(1)?;
            let out = map_array(&cast(&a, &DataType::Utf8)?, &mut f);
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
    };
    debug_assert_eq!(array.len(), number_rows);
    Ok(ColumnarValue::Array(map_array(&array, &mut f)))
}

fn map_array(array: &ArrayRef, f: &mut impl FnMut(&str, &mut String) -> bool) -> ArrayRef {
    let strings = array.as_string::<i32>();
    let mut builder = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
    let mut buf = String::new();
    for i in 0..strings.len() {
        if strings.is_null(i) {
            builder.append_null();
            continue;
        }
        buf.clear();
        if f(strings.value(i), &mut buf) {
            builder.append_value(&buf);
        } else {
            builder.append_null();
        }
    }
    Arc::new(builder.finish())
}

/// Argument `i` of table function `function` as a text literal; `None`
/// when there is no such argument, an error when it is not text.
pub(crate) fn text_literal(
    function: &str,
    exprs: &[datafusion::logical_expr::Expr],
    i: usize,
) -> Result<Option<String>> {
    use datafusion::logical_expr::Expr;
    match exprs.get(i) {
        None => Ok(None),
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        )) => Ok(Some(s.clone())),
        Some(other) => datafusion::common::plan_err!(
            "{function}: argument {} must be a text literal, got {other}",
            i + 1
        ),
    }
}

/// The full session a table function needs to plan the tables it reads.
pub(crate) fn full_session<'a>(
    what: &str,
    state: &'a dyn datafusion::catalog::Session,
) -> Result<&'a datafusion::execution::context::SessionState> {
    state
        .as_any()
        .downcast_ref::<datafusion::execution::context::SessionState>()
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("{what} needs a full session"))
        })
}
