//! The engine: the only place that assembles a DataFusion `SessionState`
//! (storage, catalog, functions, configuration), so the CLI, the server, tests
//! and benchmarks all run the same configuration.
//!
//! An [`Engine`] is shared by every connection; each connection gets its own
//! [`Session`] with its own settings (search path, SET variables).

mod call;
pub mod copy;
mod cursors;
pub mod lookup;
pub mod pg_dialect;
mod pg_syntax;
pub mod search_path;
pub mod session;
mod tables;
pub mod temp_tables;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::config::ConfigOptions;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::provider::ProfileCatalogProvider;
use crate::catalog::{Catalog, DEFAULT_SCHEMA};
use crate::error::Result;
use crate::storage::Storage;
use crate::storage::deletes::PendingDeletes;
use crate::storage::publish::TablePointer;

pub use session::{Outcome, Session};

/// The catalog name DataFusion sees; also the PostgreSQL database name.
pub const CATALOG_NAME: &str = "profiledb";

/// Set on a session's configuration (as an extension) to make incremental
/// work start over: `profiledb run --full-refresh`.
#[derive(Debug, Default)]
pub struct FullRefresh;

/// Offered to a model's query by a model run (as a session configuration
/// extension) when the query only reads one table function, whole, and the
/// model has a current version (`base`). A function that can state its
/// result as changes to that version claims it while it is planned, emits
/// only its new rows, and hands over the rows of `base` it deletes
/// ([`PendingDeletes`]) when its output ends. The run then publishes
/// `base`'s files less those rows, plus the new ones: a cost that follows
/// the change, not the table (see [`crate::storage::deletes`]).
#[derive(Debug)]
pub struct DeltaTarget {
    pub table: String,
    pub base: TablePointer,
    pub deletes: Arc<PendingDeletes>,
    claimed: AtomicBool,
}

impl DeltaTarget {
    pub fn new(table: &str, base: TablePointer) -> Self {
        Self {
            table: table.to_owned(),
            base,
            deletes: Arc::default(),
            claimed: AtomicBool::new(false),
        }
    }

    pub fn claim(&self) {
        self.claimed.store(true, Ordering::SeqCst);
    }

    pub fn claimed(&self) -> bool {
        self.claimed.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub struct Engine {
    storage: Storage,
    catalog: Arc<Catalog>,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    catalogs: Arc<dyn CatalogProviderList>,
    /// Key indexes of published tables for prepared point lookups.
    indexes: lookup::KeyIndexes,
    /// DataFusion's options as the environment sets them (`DATAFUSION_*`
    /// variables, e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`), before
    /// profiledb's own settings.
    options: ConfigOptions,
}

impl Engine {
    /// Opens the storage root given as a path or URL.
    pub async fn open(root: &str) -> Result<Arc<Self>> {
        Self::open_limited(root, None).await
    }

    /// Opens the root with a memory limit (bytes) for query execution.
    pub async fn open_limited(root: &str, memory_limit: Option<usize>) -> Result<Arc<Self>> {
        Self::with_storage(Storage::open(root)?, memory_limit).await
    }

    pub async fn with_storage(storage: Storage, memory_limit: Option<usize>) -> Result<Arc<Self>> {
        // No cache of directory listings: DataFusion's never expires, and a
        // long-running server must see files that land in raw/ after it
        // started (and those COPY … FROM STDIN writes).
        let mut runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0));
        if let Some(limit) = memory_limit {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let runtime = runtime.build_arc()?;
        let options = ConfigOptions::from_env()?;
        runtime.register_object_store(storage.store_url().as_ref(), storage.store());
        let catalog = Catalog::open(storage.clone()).await?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(
            CATALOG_NAME.to_owned(),
            Arc::new(ProfileCatalogProvider::new(Arc::clone(&catalog))),
        );
        Ok(Arc::new(Self {
            storage,
            catalog,
            runtime,
            catalogs,
            indexes: lookup::KeyIndexes::default(),
            options,
        }))
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// A DataFusion context with profiledb's catalog, functions and settings.
    pub fn context(&self) -> SessionContext {
        let mut config = SessionConfig::from(self.options.clone())
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            // Ours, in PostgreSQL's terms (catalog::information_schema).
            .with_information_schema(false);
        let options = config.options_mut();
        options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        options.execution.time_zone = Some("UTC".to_owned());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_catalog_list(Arc::clone(&self.catalogs))
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::udf::register_all(&ctx, &self.catalog);
        ctx
    }

    /// A new session (one per client connection).
    pub fn session(self: &Arc<Self>) -> Session {
        Session::new(Arc::clone(self))
    }

    /// Runs SQL as a client's statements would run (in a session of its
    /// own, as an admin) and collects the rows of those that return rows.
    pub async fn query(
        self: &Arc<Self>,
        sql: &str,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let mut session = self.session();
        let mut out = Vec::new();
        for outcome in session.execute_sql(sql).await? {
            if let session::Outcome::Rows { stream, .. } = outcome {
                out.extend(futures::TryStreamExt::try_collect::<Vec<_>>(stream).await?);
            }
        }
        Ok(out)
    }
}
