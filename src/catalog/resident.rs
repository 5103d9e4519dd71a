//! Published table versions kept in memory, decoded, within a byte budget:
//! the buffer cache of a columnar store. A version is immutable, so its
//! rows never go stale; a scan of a resident version reads Arrow batches
//! instead of opening, decompressing and decoding Parquet (which is most of
//! the cost of a segment count over a profiles table).
//!
//! Only a server keeps versions (`ServerOptions::resident_memory`): it
//! answers the same tables over and over, where a `profiledb run` reads
//! each once, and only the columns it needs.
//!
//! [`ResidentTable`] wraps the provider a published table is read through
//! (deleted rows already excluded). Its first scan loads the whole version
//! when about four times its Parquet size fits the budget, and serves that
//! scan and the following ones from memory; a version that does not fit is
//! scanned from Parquet as before. Loading a newer version
//! of a table drops the older one; past the budget, the versions used
//! longest ago are dropped first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::{ExecutionPlan, collect};

/// Decoded Arrow data takes more room than the Parquet it came from; a
/// version is loaded when this many times its Parquet bytes fit.
const DECODED_PER_PARQUET_BYTE: u64 = 4;

/// A server's default budget: 2 GiB of decoded batches.
pub const DEFAULT_BUDGET: u64 = 2 << 30;

struct Entry {
    table: String,
    batches: Arc<Vec<RecordBatch>>,
    bytes: u64,
    used: u64,
}

/// The resident versions of one process, by `schema.table@version`.
pub struct ResidentTables {
    /// Bytes of decoded batches kept at most; 0 keeps none.
    budget: std::sync::atomic::AtomicU64,
    state: Mutex<(HashMap<String, Entry>, u64)>,
}

impl std::fmt::Debug for ResidentTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResidentTables(budget {})", self.budget())
    }
}

impl Default for ResidentTables {
    fn default() -> Self {
        Self {
            budget: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new((HashMap::new(), 0)),
        }
    }
}

impl ResidentTables {
    fn budget(&self) -> u64 {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the budget; 0 drops every resident version.
    pub fn set_budget(&self, bytes: u64) {
        self.budget
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        if bytes == 0 {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clear();
        }
    }

    fn get(&self, version: &str) -> Option<Arc<Vec<RecordBatch>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        let tick = state.1;
        let entry = state.0.get_mut(version)?;
        entry.used = tick;
        Some(Arc::clone(&entry.batches))
    }

    /// Whether a version of this Parquet size may be kept.
    pub fn fits(&self, parquet_bytes: u64) -> bool {
        let budget = self.budget();
        budget > 0 && parquet_bytes.saturating_mul(DECODED_PER_PARQUET_BYTE) <= budget
    }

    /// Keeps `batches` as `version` of `table`, dropping the table's other
    /// versions, then the least recently used, to stay within the budget.
    fn insert(
        &self,
        table: &str,
        version: &str,
        batches: Vec<RecordBatch>,
    ) -> Arc<Vec<RecordBatch>> {
        let bytes: u64 = batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();
        let batches = Arc::new(batches);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        let tick = state.1;
        let entries = &mut state.0;
        entries.retain(|_, e| e.table != table);
        let mut total: u64 = entries.values().map(|e| e.bytes).sum::<u64>() + bytes;
        let budget = self.budget();
        while total > budget {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(v, _)| v.clone())
            else {
                break;
            };
            if let Some(e) = entries.remove(&oldest) {
                total -= e.bytes;
            }
        }
        if bytes <= budget {
            entries.insert(
                version.to_owned(),
                Entry {
                    table: table.to_owned(),
                    batches: Arc::clone(&batches),
                    bytes,
                    used: tick,
                },
            );
        }
        batches
    }
}

/// The provider that reads `provider`'s files: its own, or the one a
/// [`ResidentTable`] wraps. What rewrites file lists (an incremental run's
/// `ScanFiles::subset`) must wrap this, not a scan from memory.
pub fn file_provider(provider: &Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
    let any: &dyn std::any::Any = provider.as_ref();
    match any.downcast_ref::<ResidentTable>() {
        Some(r) => Arc::clone(&r.inner),
        None => Arc::clone(provider),
    }
}

/// A published table version, served from memory once loaded.
#[derive(Debug)]
pub struct ResidentTable {
    inner: Arc<dyn TableProvider>,
    /// `schema.name`.
    table: String,
    version: String,
    parquet_bytes: u64,
    resident: Arc<ResidentTables>,
}

impl ResidentTable {
    pub fn new(
        inner: Arc<dyn TableProvider>,
        table: String,
        version: String,
        parquet_bytes: u64,
        resident: &Arc<ResidentTables>,
    ) -> Self {
        Self {
            inner,
            // Version ids are unique, but a key naming the table as well
            // cannot mix two tables up.
            version: format!("{table}@{version}"),
            table,
            parquet_bytes,
            resident: Arc::clone(resident),
        }
    }

    /// The version's rows, loaded now if they fit and are not yet.
    async fn batches(&self, state: &dyn Session) -> Result<Option<Arc<Vec<RecordBatch>>>> {
        if let Some(b) = self.resident.get(&self.version) {
            return Ok(Some(b));
        }
        if !self.resident.fits(self.parquet_bytes) {
            return Ok(None);
        }
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        Ok(Some(self.resident.insert(
            &self.table,
            &self.version,
            batches,
        )))
    }
}

#[async_trait::async_trait]
impl TableProvider for ResidentTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Parquet may use filters to skip row groups; memory applies none,
        // so none is ever taken as exact and all are applied above.
        Ok(self
            .inner
            .supports_filters_pushdown(filters)?
            .into_iter()
            .map(|p| match p {
                TableProviderFilterPushDown::Exact => TableProviderFilterPushDown::Inexact,
                other => other,
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match self.batches(state).await? {
            Some(batches) => {
                // Round robin over the session's partitions, as a
                // repartitioned Parquet scan would be.
                let n = state.config().target_partitions().max(1);
                let mut partitions = vec![Vec::new(); n.min(batches.len()).max(1)];
                let count = partitions.len();
                for (i, b) in batches.iter().enumerate() {
                    partitions[i % count].push(b.clone());
                }
                let source =
                    MemorySourceConfig::try_new(&partitions, self.schema(), projection.cloned())?
                        .with_limit(limit);
                Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
            }
            None => self.inner.scan(state, projection, filters, limit).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch(n: usize) -> Vec<RecordBatch> {
        vec![
            RecordBatch::try_from_iter([(
                "x",
                Arc::new(Int64Array::from(vec![1; n])) as datafusion::arrow::array::ArrayRef,
            )])
            .unwrap(),
        ]
    }

    #[test]
    fn versions_replace_each_other_and_the_oldest_go_first() {
        let resident = ResidentTables::default();
        assert!(!resident.fits(1), "no budget, nothing kept");
        let one = batch(1000)[0].get_array_memory_size() as u64;
        resident.set_budget(one * 2 + one / 2);
        resident.insert("public.a", "a1", batch(1000));
        resident.insert("public.a", "a2", batch(1000));
        assert!(resident.get("a1").is_none(), "a newer version replaces it");
        resident.insert("public.b", "b1", batch(1000));
        assert!(resident.get("a2").is_some());
        resident.insert("public.c", "c1", batch(1000));
        assert!(resident.get("b1").is_none(), "b1 was used longest ago");
        assert!(resident.get("a2").is_some() && resident.get("c1").is_some());
        resident.set_budget(0);
        assert!(resident.get("c1").is_none());
    }
}
