//! `CALL` statements: the procedures profiledb offers.
//!
//! - `CALL system.run()` / `CALL system.run('profiles+')`: an admin runs
//!   models now, through the server's job runner (one run at a time, with
//!   scheduled ones), and gets a row per model run. The run is recorded in
//!   `system.runs` with trigger `manual` and the caller's name.

use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};

use super::session::{Outcome, Session};
use crate::catalog::system;
use crate::error::{CatalogError, Error, Result};

impl Session {
    pub(super) async fn call(&mut self, function: Function) -> Result<Outcome> {
        let name = function.name.to_string().to_lowercase();
        if name != "system.run" {
            return Err(CatalogError::UndefinedFunction(format!(
                "procedure {name} does not exist (profiledb offers system.run)"
            ))
            .into());
        }
        let selection = match &function.args {
            FunctionArguments::None => None,
            FunctionArguments::List(list) => match list.args.as_slice() {
                [] => None,
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
                    Value::SingleQuotedString(s) if !s.trim().is_empty() => Some(s.clone()),
                    Value::SingleQuotedString(_) | Value::Null => None,
                    _ => return Err(usage()),
                },
                _ => return Err(usage()),
            },
            FunctionArguments::Subquery(_) => return Err(usage()),
        };
        let operations = self.catalog().operations().ok_or_else(|| {
            Error::Config("this server runs no models (no job runner was started)".into())
        })?;
        let batch = operations.run_models(selection, self.user()).await?;
        let schema = system::run_result_schema();
        let stream = MemoryStream::try_new(vec![batch], std::sync::Arc::clone(&schema), None)?;
        Ok(Outcome::Rows {
            schema,
            stream: Box::pin(stream),
            command: "CALL",
        })
    }
}

fn usage() -> Error {
    CatalogError::UndefinedFunction(
        "system.run takes one text argument, a selection such as 'profiles+' (or none: all models)"
            .into(),
    )
    .into()
}
