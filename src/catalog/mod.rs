//! The catalog: schemas, and in them sources (the landing zone), published
//! tables and persisted views — all read from and written to the storage
//! root, so every process (a server, a `profiledb run`) sees the same objects.
//!
//! Readers take an immutable [`Snapshot`]; [`Catalog::refresh`] replaces it
//! after re-reading only the catalog files that changed. DDL is persisted
//! first and then refreshed, so what a client created survives a restart.

pub mod alter;
pub mod backends;
pub mod information_schema;
pub mod oid;
pub mod pg_catalog;
pub mod pg_types;
pub mod provider;
pub mod resident;
pub mod scan_files;
pub mod sources;
pub mod system;
pub mod table_stats;
pub mod views;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Error, Result};
use crate::storage::comments::Comments;
use crate::storage::publish::{self, InputFiles, TablePointer};
use crate::storage::{Listed, Storage, deletes, layout};
use scan_files::ScanFiles;
use views::{ViewDef, ViewProvider};

pub const DEFAULT_SCHEMA: &str = "public";
/// Where segments live (views an analyst may create).
pub const SEGMENTS_SCHEMA: &str = "segments";
/// Schemas that always exist and cannot be dropped.
pub const BUILTIN_SCHEMAS: [&str; 2] = [DEFAULT_SCHEMA, SEGMENTS_SCHEMA];
/// Names of the sessions' temporary schemas start with this
/// (see `engine::temp_tables`).
pub const TEMP_SCHEMA_PREFIX: &str = "pg_temp_";
/// Schemas answered by the engine itself, never stored.
pub const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// A folder of the landing zone.
    Source,
    /// A materialised table (a model's output).
    Table,
    View,
    /// A table of the `system` schema, answered by the job runner.
    System,
}

#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    pub arrow_schema: SchemaRef,
    pub provider: Arc<dyn TableProvider>,
    pub pointer: Option<TablePointer>,
    pub view: Option<ViewDef>,
}

/// An immutable view of the catalog.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub schemas: BTreeMap<String, BTreeMap<String, Relation>>,
}

impl Relation {
    /// Its `COMMENT ON` text (none for raw sources).
    pub fn comments(&self) -> Option<&Comments> {
        match (&self.pointer, &self.view) {
            (Some(p), _) => Some(&p.comments),
            (_, Some(v)) => Some(&v.comments),
            _ => None,
        }
    }
}

impl Snapshot {
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.schemas.get(schema)?.get(name)
    }

    pub fn relations(&self) -> impl Iterator<Item = &Relation> {
        self.schemas.values().flat_map(BTreeMap::values)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SchemaDef {
    name: String,
    created_at: String,
}

/// A parsed catalog file, kept while the file is unchanged.
#[derive(Debug, Clone)]
enum CachedFile {
    Schema(String),
    Table(Box<Relation>),
    View(Box<Relation>),
}

#[derive(Debug)]
pub struct Catalog {
    storage: Storage,
    snapshot: RwLock<Arc<Snapshot>>,
    sources: RwLock<Vec<sources::SourceTable>>,
    files: Mutex<HashMap<String, (Listed, CachedFile)>>,
    /// Serialises this process's catalog writes.
    ddl: tokio::sync::Mutex<()>,
    /// The server's connections (`pg_stat_activity`).
    backends: backends::Backends,
    /// Index scans of tables (`pg_stat_user_tables`).
    stats: table_stats::TableStats,
    /// Table versions held in memory (see [`resident`]).
    resident: Arc<resident::ResidentTables>,
    /// The catalog listing and sources generation the snapshot was built
    /// from: while both are unchanged, the snapshot stays.
    built_from: Mutex<(Option<Vec<Listed>>, u64)>,
    /// Counts reloads of the sources.
    sources_generation: std::sync::atomic::AtomicU64,
    /// When the last completed refresh started.
    refreshed_at: Mutex<Option<std::time::Instant>>,
    /// The server's job runner: the `system` schema's rows.
    operations: RwLock<Option<Arc<dyn system::Operations>>>,
}

impl Catalog {
    /// Opens the catalog of `storage` and reads it once.
    pub async fn open(storage: Storage) -> Result<Arc<Self>> {
        let catalog = Arc::new(Self {
            storage,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            sources: RwLock::new(Vec::new()),
            files: Mutex::new(HashMap::new()),
            ddl: tokio::sync::Mutex::new(()),
            backends: backends::Backends::default(),
            stats: table_stats::TableStats::default(),
            resident: Arc::default(),
            built_from: Mutex::new((None, 0)),
            sources_generation: std::sync::atomic::AtomicU64::new(1),
            refreshed_at: Mutex::new(None),
            operations: RwLock::new(None),
        });
        catalog.refresh_sources().await?;
        Ok(catalog)
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn backends(&self) -> &backends::Backends {
        &self.backends
    }

    /// Table versions kept in memory (none unless a server sets a budget).
    pub fn resident(&self) -> &resident::ResidentTables {
        &self.resident
    }

    pub fn stats(&self) -> &table_stats::TableStats {
        &self.stats
    }

    /// Registers the server's job runner: the `system` schema appears.
    pub async fn set_operations(&self, operations: Arc<dyn system::Operations>) -> Result<()> {
        *self.operations.write().unwrap_or_else(|e| e.into_inner()) = Some(operations);
        self.built_from.lock().unwrap_or_else(|e| e.into_inner()).0 = None;
        self.refresh().await
    }

    /// The server's job runner, when there is one.
    pub fn operations(&self) -> Option<Arc<dyn system::Operations>> {
        self.operations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the landing zone's folders and file schemas.
    pub async fn refresh_sources(&self) -> Result<()> {
        let loaded = sources::load_sources(&self.storage).await?;
        *self.sources.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        self.sources_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.refresh().await
    }

    /// Refreshes unless the last refresh started less than `max_age` ago.
    /// Statements read through it: this process's own writes refresh
    /// the shared snapshot at once, so only another process's publish
    /// waits up to `max_age` to be seen — and a server answering
    /// thousands of statements a second does not list the catalog for
    /// each.
    pub async fn refresh_if_older(&self, max_age: std::time::Duration) -> Result<()> {
        let fresh = self
            .refreshed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < max_age);
        if fresh { Ok(()) } else { self.refresh().await }
    }

    /// Re-reads changed catalog files and publishes a new snapshot; when
    /// nothing changed the snapshot, and the indexes keyed on its tables'
    /// versions, stay as they are.
    pub async fn refresh(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let listed = self.storage.list_detailed("catalog/").await?;
        let generation = self
            .sources_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        {
            let built = self.built_from.lock().unwrap_or_else(|e| e.into_inner());
            if built.1 == generation && built.0.as_ref() == Some(&listed) {
                self.refreshed(started);
                return Ok(());
            }
        }
        let listing = listed.clone();
        let present: std::collections::HashSet<String> =
            listed.iter().map(|l| l.path.clone()).collect();
        let mut parsed = Vec::with_capacity(listed.len());
        for item in listed {
            let cached = {
                let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
                files
                    .get(&item.path)
                    .filter(|(l, _)| *l == item)
                    .map(|(_, c)| c.clone())
            };
            let entry = match cached {
                Some(c) => Some(c),
                None => match self.read_file(&item.path).await {
                    Ok(Some(c)) => {
                        self.files
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(item.path.clone(), (item.clone(), c.clone()));
                        Some(c)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(path = %item.path, error = %e, "skipping unreadable catalog file");
                        None
                    }
                },
            };
            if let Some(e) = entry {
                parsed.push(e);
            }
        }
        let mut snap = Snapshot::default();
        for s in BUILTIN_SCHEMAS {
            snap.schemas.entry(s.to_owned()).or_default();
        }
        for source in self
            .sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            snap.schemas
                .entry(DEFAULT_SCHEMA.to_owned())
                .or_default()
                .insert(
                    source.name.clone(),
                    Relation {
                        schema: DEFAULT_SCHEMA.to_owned(),
                        name: source.name.clone(),
                        kind: RelationKind::Source,
                        arrow_schema: Arc::clone(&source.schema),
                        provider: Arc::clone(&source.provider),
                        pointer: None,
                        view: None,
                    },
                );
        }
        for entry in parsed {
            match entry {
                CachedFile::Schema(name) => {
                    snap.schemas.entry(name).or_default();
                }
                CachedFile::Table(r) | CachedFile::View(r) => {
                    snap.schemas
                        .entry(r.schema.clone())
                        .or_default()
                        .insert(r.name.clone(), *r);
                }
            }
        }
        if let Some(operations) = self.operations() {
            let tables = snap
                .schemas
                .entry(system::SYSTEM_SCHEMA.to_owned())
                .or_default();
            for (name, schema) in operations.tables() {
                let provider =
                    system::SystemTable::new(Arc::clone(&operations), name, Arc::clone(&schema));
                tables.insert(
                    name.to_owned(),
                    Relation {
                        schema: system::SYSTEM_SCHEMA.to_owned(),
                        name: name.to_owned(),
                        kind: RelationKind::System,
                        arrow_schema: schema,
                        provider: Arc::new(provider),
                        pointer: None,
                        view: None,
                    },
                );
            }
        }
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|path, _| present.contains(path));
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        *self.built_from.lock().unwrap_or_else(|e| e.into_inner()) = (Some(listing), generation);
        self.refreshed(started);
        Ok(())
    }

    fn refreshed(&self, started: std::time::Instant) {
        let mut at = self.refreshed_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none_or(|t| t < started) {
            *at = Some(started);
        }
    }

    async fn read_file(&self, path: &str) -> Result<Option<CachedFile>> {
        if let Some(name) = path
            .strip_prefix(layout::CATALOG_SCHEMAS)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_suffix(".json"))
        {
            return Ok(Some(CachedFile::Schema(name.to_owned())));
        }
        if layout::parse_object_file(layout::CATALOG_TABLES, path).is_some() {
            let Some(pointer) = self.storage.get_json::<TablePointer>(path).await? else {
                return Ok(None);
            };
            return Ok(Some(CachedFile::Table(Box::new(
                self.table_relation(pointer).await?,
            ))));
        }
        if layout::parse_object_file(layout::CATALOG_VIEWS, path).is_some() {
            let Some(def) = self.storage.get_json::<ViewDef>(path).await? else {
                return Ok(None);
            };
            let schema = publish::schema_of(&def.columns, path)?;
            return Ok(Some(CachedFile::View(Box::new(Relation {
                schema: def.schema.clone(),
                name: def.name.clone(),
                kind: RelationKind::View,
                arrow_schema: Arc::clone(&schema),
                provider: Arc::new(ViewProvider::new(def.clone(), schema)),
                pointer: None,
                view: Some(def),
            }))));
        }
        Ok(None)
    }

    async fn table_relation(&self, pointer: TablePointer) -> Result<Relation> {
        let schema = pointer.arrow_schema()?;
        let urls = pointer
            .files
            .iter()
            .map(|f| self.storage.listing_url(f))
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(&schema));
        let mut provider: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
        if !pointer.deletes.is_empty() {
            let deleted = deletes::load_all(&self.storage, &pointer.deletes).await?;
            provider = Arc::new(ScanFiles::live(provider, &self.storage, &deleted));
        }
        let provider = Arc::new(resident::ResidentTable::new(
            provider,
            format!("{}.{}", pointer.schema, pointer.name),
            pointer.version.clone(),
            pointer.bytes,
            &self.resident,
        ));
        Ok(Relation {
            schema: pointer.schema.clone(),
            name: pointer.name.clone(),
            kind: RelationKind::Table,
            arrow_schema: schema,
            provider,
            pointer: Some(pointer),
            view: None,
        })
    }

    /// The files `name` (in the default schema) reads now: a raw source's
    /// Parquet files, or a table's current version and files.
    pub fn input_files(&self, name: &str) -> Option<InputFiles> {
        let snap = self.snapshot();
        let relation = snap.relation(DEFAULT_SCHEMA, name)?;
        match relation.kind {
            RelationKind::Source => {
                let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
                let source = sources.iter().find(|s| s.name == name)?;
                Some(InputFiles {
                    version: None,
                    files: source.file_list.clone(),
                    deleted: BTreeMap::new(),
                    delete_files: BTreeMap::new(),
                })
            }
            RelationKind::Table => Some(InputFiles::of_table(relation.pointer.as_ref()?)),
            RelationKind::View | RelationKind::System => None,
        }
    }

    /// Fails unless `schema` exists (or is a system schema).
    pub fn require_schema(&self, schema: &str) -> Result<()> {
        if SYSTEM_SCHEMAS.contains(&schema) || schema == system::SYSTEM_SCHEMA {
            return Err(CatalogError::ReadOnly(format!("schema {schema} is read-only")).into());
        }
        if self.snapshot().schemas.contains_key(schema) {
            Ok(())
        } else {
            Err(CatalogError::UndefinedSchema(schema.to_owned()).into())
        }
    }

    pub async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        if SYSTEM_SCHEMAS.contains(&name)
            || name == system::SYSTEM_SCHEMA
            || self.snapshot().schemas.contains_key(name)
        {
            return if if_not_exists {
                Ok(())
            } else {
                Err(CatalogError::DuplicateSchema(name.to_owned()).into())
            };
        }
        let def = SchemaDef {
            name: name.to_owned(),
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        self.storage
            .put_json(&layout::schema_file(name), &def)
            .await?;
        self.refresh().await
    }

    pub async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        let snap = self.snapshot();
        let Some(relations) = snap.schemas.get(name) else {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::UndefinedSchema(name.to_owned()).into())
            };
        };
        if BUILTIN_SCHEMAS.contains(&name) {
            return Err(CatalogError::ReadOnly(format!(
                "schema {name} is built in and cannot be dropped"
            ))
            .into());
        }
        if !relations.is_empty() && !cascade {
            return Err(CatalogError::DependentObjects {
                name: format!("schema {name}"),
                dependents: relations.keys().cloned().collect::<Vec<_>>().join(", "),
            }
            .into());
        }
        for r in relations.values() {
            self.drop_relation_files(r).await?;
        }
        self.storage.delete(&layout::schema_file(name)).await?;
        self.refresh().await
    }

    /// Persists a view. `def.depends_on` must list what its query reads.
    pub async fn create_view(&self, def: ViewDef, or_replace: bool) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        self.require_schema(&def.schema)?;
        let qualified = format!("{}.{}", def.schema, def.name);
        let snap = self.snapshot();
        if let Some(existing) = snap.relation(&def.schema, &def.name) {
            if existing.kind != RelationKind::View {
                return Err(CatalogError::DuplicateTable(qualified).into());
            }
            if !or_replace {
                return Err(CatalogError::DuplicateTable(qualified).into());
            }
        }
        if let Some(path) = view_path(&snap, &def.depends_on, &qualified) {
            return Err(CatalogError::InvalidDefinition(format!(
                "view {qualified} would read itself: {qualified} → {}",
                path.join(" → ")
            ))
            .into());
        }
        self.storage
            .put_json(&layout::view_file(&def.schema, &def.name), &def)
            .await?;
        self.refresh().await
    }

    /// True if following view dependencies from `start` reaches `target`.
    /// (See [`view_path`] for the way.)
    fn reaches(&self, snap: &Snapshot, start: &[String], target: &str) -> bool {
        let mut stack: Vec<String> = start.to_vec();
        let mut seen = std::collections::HashSet::new();
        while let Some(next) = stack.pop() {
            if next == target {
                return true;
            }
            if !seen.insert(next.clone()) {
                continue;
            }
            if let Some((s, n)) = next.split_once('.')
                && let Some(v) = snap.relation(s, n).and_then(|r| r.view.as_ref())
            {
                stack.extend(v.depends_on.iter().cloned());
            }
        }
        false
    }

    /// Drops a view (or, with `cascade`, it and the views that read it).
    pub async fn drop_view(
        &self,
        schema: &str,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<()> {
        self.drop_relation(schema, name, RelationKind::View, if_exists, cascade)
            .await
    }

    /// Drops a materialised table.
    pub async fn drop_table(
        &self,
        schema: &str,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<()> {
        self.drop_relation(schema, name, RelationKind::Table, if_exists, cascade)
            .await
    }

    async fn drop_relation(
        &self,
        schema: &str,
        name: &str,
        kind: RelationKind,
        if_exists: bool,
        cascade: bool,
    ) -> Result<()> {
        let _guard = self.ddl.lock().await;
        self.refresh().await?;
        let snap = self.snapshot();
        let qualified = format!("{schema}.{name}");
        let Some(relation) = snap.relation(schema, name) else {
            return if if_exists {
                Ok(())
            } else {
                Err(CatalogError::UndefinedTable(qualified).into())
            };
        };
        if relation.kind != kind {
            let expected = match kind {
                RelationKind::View => "view",
                RelationKind::Table | RelationKind::System => "table",
                RelationKind::Source => "source",
            };
            let hint = if relation.kind == RelationKind::Source {
                " (it is a raw source in the landing zone)"
            } else {
                ""
            };
            return Err(CatalogError::WrongObjectType {
                name: format!("{qualified}{hint}"),
                expected,
            }
            .into());
        }
        let dependents: Vec<&Relation> = snap
            .relations()
            .filter(|r| {
                format!("{}.{}", r.schema, r.name) != qualified
                    && r.view
                        .as_ref()
                        .is_some_and(|v| self.reaches(&snap, &v.depends_on, &qualified))
            })
            .collect();
        if !dependents.is_empty() && !cascade {
            return Err(CatalogError::DependentObjects {
                name: qualified,
                dependents: dependents
                    .iter()
                    .map(|r| format!("view {}.{}", r.schema, r.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
        for d in dependents {
            self.drop_relation_files(d).await?;
        }
        self.drop_relation_files(relation).await?;
        self.refresh().await
    }

    async fn drop_relation_files(&self, r: &Relation) -> Result<()> {
        match r.kind {
            RelationKind::View => {
                self.storage
                    .delete(&layout::view_file(&r.schema, &r.name))
                    .await
            }
            RelationKind::Table => publish::drop_table(&self.storage, &r.schema, &r.name).await,
            RelationKind::Source => Err(Error::Catalog(CatalogError::ReadOnly(format!(
                "{}.{} is a raw source; profiledb never deletes landing data",
                r.schema, r.name
            )))),
            RelationKind::System => Err(alter::system_table(&r.schema, &r.name)),
        }
    }
}

/// The relations from one of `start` to `target` following the views'
/// dependencies (a shortest way), if there is one.
fn view_path(snap: &Snapshot, start: &[String], target: &str) -> Option<Vec<String>> {
    let mut came_from: HashMap<String, Option<String>> = HashMap::new();
    let mut queue: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for s in start {
        if came_from.insert(s.clone(), None).is_none() {
            queue.push_back(s.clone());
        }
    }
    while let Some(next) = queue.pop_front() {
        if next == target {
            let mut path = vec![next.clone()];
            let mut at = next;
            while let Some(Some(prev)) = came_from.get(&at) {
                path.push(prev.clone());
                at = prev.clone();
            }
            path.reverse();
            return Some(path);
        }
        if let Some((s, n)) = next.split_once('.')
            && let Some(v) = snap.relation(s, n).and_then(|r| r.view.as_ref())
        {
            for d in &v.depends_on {
                if !came_from.contains_key(d) {
                    came_from.insert(d.clone(), Some(next.clone()));
                    queue.push_back(d.clone());
                }
            }
        }
    }
    None
}
