//! The crate's one error type. Every variant carries the context a user needs
//! to act on it (which file, model, table or statement); conversions to
//! DataFusion's error happen here so our code can fail inside DataFusion
//! callbacks, and the wire layer maps errors to SQLSTATEs in one place
//! (`server::sqlstate`).

use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid storage root {root:?}: {message}")]
    InvalidRoot { root: String, message: String },

    #[error("storage error at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: datafusion::object_store::Error,
    },

    #[error("corrupt metadata file {path}: {message}")]
    Metadata { path: String, message: String },

    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },

    #[error("model {model} ({path}): {message}")]
    Model {
        model: String,
        path: String,
        message: String,
    },

    #[error("model dependency cycle: {0}")]
    ModelCycle(String),

    #[error("{0}")]
    Catalog(#[from] CatalogError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// Data sent with `COPY … FROM STDIN` that does not fit its target.
    #[error("{0}")]
    Copy(String),

    /// A cancel request or `statement_timeout` stopped the statement.
    #[error("{0}")]
    QueryCanceled(String),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// Errors about catalog objects; each maps to a distinct SQLSTATE.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// A setting, role or other named object that does not exist.
    #[error("{0}")]
    UndefinedObject(String),
    #[error("schema \"{0}\" does not exist")]
    UndefinedSchema(String),
    /// A definition that cannot stand, such as a view reading itself.
    #[error("{0}")]
    InvalidDefinition(String),
    /// A function or procedure that does not exist (the text says which).
    #[error("{0}")]
    UndefinedFunction(String),
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    UndefinedColumn { table: String, column: String },
    #[error("cursor \"{0}\" does not exist")]
    UndefinedCursor(String),
    #[error("cursor \"{0}\" already exists")]
    DuplicateCursor(String),
    /// DECLARE without WITH HOLD outside BEGIN … COMMIT.
    #[error("DECLARE CURSOR can only be used in transaction blocks")]
    NoActiveTransaction,
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    #[error("schema \"{0}\" already exists")]
    DuplicateSchema(String),
    #[error("\"{name}\" is not a {expected}")]
    WrongObjectType {
        name: String,
        expected: &'static str,
    },
    #[error("cannot drop {name} because other objects depend on it: {dependents}")]
    DependentObjects { name: String, dependents: String },
    #[error("{0}")]
    ReadOnly(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn storage(path: impl std::fmt::Display, source: datafusion::object_store::Error) -> Self {
        Error::Storage {
            path: path.to_string(),
            source,
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
