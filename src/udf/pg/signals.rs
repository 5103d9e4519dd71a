//! `pg_cancel_backend(pid)` and `pg_terminate_backend(pid [, timeout])`:
//! signals to another connection of the server (see
//! `catalog::backends`). The caller's own pid is appended as the last
//! argument by `engine::pg_dialect::substitute_session_values`, so the
//! registry can check that the caller may signal the target.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};

use super::{PgCall, PgFn, oids};
use crate::catalog::Catalog;
use crate::catalog::backends::Refused;
use crate::error::Error;

pub fn functions(catalog: &Arc<Catalog>) -> Vec<PgFn> {
    vec![
        PgFn::new(
            "pg_cancel_backend",
            &[2],
            DataType::Boolean,
            cancel_backend,
            catalog,
        )
        .volatile(),
        PgFn::new(
            "pg_terminate_backend",
            &[2, 3],
            DataType::Boolean,
            terminate_backend,
            catalog,
        )
        .volatile(),
    ]
}

fn cancel_backend(c: &PgCall) -> Result<ArrayRef> {
    signal(c, false)
}

fn terminate_backend(c: &PgCall) -> Result<ArrayRef> {
    signal(c, true)
}

/// True where the signal was sent; false where the pid is no connection
/// (PostgreSQL also warns); an error where the caller may not send it.
fn signal(c: &PgCall, terminate: bool) -> Result<ArrayRef> {
    let callers = oids(c, c.args.len() - 1)?;
    let out = oids(c, 0)?
        .into_iter()
        .zip(callers)
        .map(|(pid, caller)| {
            let (Some(pid), Some(caller)) = (pid, caller) else {
                return Ok(None);
            };
            let (pid, caller) = (pid as i32, caller as i32);
            match c.catalog.backends().signal(pid, caller, terminate) {
                Ok(()) => Ok(Some(true)),
                Err(Refused::NotABackend) => Ok(Some(false)),
                Err(Refused::NotPermitted) => {
                    let what = if terminate {
                        "permission denied to terminate process"
                    } else {
                        "permission denied to cancel query"
                    };
                    Err(DataFusionError::External(Box::new(
                        Error::PermissionDenied(format!(
                            "{what}: only an admin or a connection of the same user may signal \
                             backend {pid}"
                        )),
                    )))
                }
            }
        })
        .collect::<Result<BooleanArray>>()?;
    Ok(Arc::new(out))
}
