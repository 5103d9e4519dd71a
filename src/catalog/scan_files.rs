//! A table whose scans read its files another way, by wrapping the table's
//! own provider (so schemas, casts and hive partition columns stay exactly
//! as a full read has them) and rewriting the file lists of the scans it
//! plans:
//!
//! - [`ScanFiles::subset`]: only some of its files — what an incremental
//!   run reads (the raw files that arrived since the last run, or the files
//!   of a table that an earlier version had already seen);
//! - [`ScanFiles::live`]: each data file that lost rows to a later version
//!   (see [`crate::storage::deletes`]) through a Parquet row selection of
//!   the rows it still has. Limits are then not passed down to the file
//!   listing (it would stop listing files once their row counts, deleted
//!   rows included, reach the limit).
//!
//! Statistics are those of the files read: a subset's files' own, and for
//! a file read through a row selection its statistics made inexact with
//! the rows it still has (its bounds still bound the rows left). The
//! planner needs them to pick a join's build side: a table read through
//! its delete files is still the size it was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::storage::Storage;
use crate::storage::deletes::DeletedRows;

#[derive(Debug)]
pub struct ScanFiles {
    inner: Arc<dyn TableProvider>,
    rewrite: Rewrite,
}

/// Keyed by object store path.
#[derive(Debug)]
enum Rewrite {
    Only(HashSet<String>),
    Live(HashMap<String, RowSelection>),
}

impl ScanFiles {
    /// `files`: paths relative to the storage root.
    pub fn subset(
        inner: Arc<dyn TableProvider>,
        storage: &Storage,
        files: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Self {
        let keep = files
            .into_iter()
            .map(|f| storage.path(f.as_ref()).to_string())
            .collect();
        Self {
            inner,
            rewrite: Rewrite::Only(keep),
        }
    }

    /// `deleted`: data file (relative to the storage root) → (its rows,
    /// the deleted ones).
    pub fn live<'a>(
        inner: Arc<dyn TableProvider>,
        storage: &Storage,
        deleted: impl IntoIterator<Item = (&'a String, &'a (u64, DeletedRows))>,
    ) -> Self {
        let selections = deleted
            .into_iter()
            .map(|(file, (rows, d))| (storage.path(file).to_string(), d.selection(*rows)))
            .collect();
        Self {
            inner,
            rewrite: Rewrite::Live(selections),
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for ScanFiles {
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
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let limit = match self.rewrite {
            Rewrite::Only(_) => limit,
            Rewrite::Live(_) => None,
        };
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        match &self.rewrite {
            Rewrite::Only(keep) if keep.is_empty() => Ok(Arc::new(EmptyExec::new(plan.schema()))),
            Rewrite::Only(keep) => map_scanned_files(plan, |f| {
                keep.contains(f.object_meta.location.as_ref())
                    .then(|| f.clone())
            }),
            Rewrite::Live(selections) => map_scanned_files(plan, |f| {
                Some(match selections.get(f.object_meta.location.as_ref()) {
                    Some(selection) => select_rows(f, selection.clone()),
                    None => f.clone(),
                })
            }),
        }
    }
}

/// `file` read through `selection` (of all its rows), and through the
/// selection it was read through already, if any; its statistics made
/// inexact with the rows left (its bounds still bound them).
pub fn select_rows(file: &PartitionedFile, selection: RowSelection) -> PartitionedFile {
    let selection = narrowed(file, selection);
    let mut file = file.clone();
    file.statistics = file.statistics.map(|s| {
        let mut s = s.as_ref().clone().to_inexact();
        s.num_rows = Precision::Inexact(selection.row_count());
        Arc::new(s)
    });
    file.with_extension(ParquetRowSelection::new(selection))
}

/// `selection` (of all of `file`'s rows) within the selection `file` is
/// read through already, if any.
pub fn narrowed(file: &PartitionedFile, selection: RowSelection) -> RowSelection {
    match file.extension::<ParquetRowSelection>() {
        Some(before) => before.selection().intersection(&selection),
        None => selection,
    }
}

/// `plan` with each file its scans read replaced by what `f` makes of it
/// (None: not read), and statistics summed over the files read (unknown
/// when a file has none). A scan left with no file reads nothing.
pub fn map_scanned_files(
    plan: Arc<dyn ExecutionPlan>,
    f: impl Fn(&PartitionedFile) -> Option<PartitionedFile>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mapped = plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        let groups: Vec<FileGroup> = config
            .file_groups
            .iter()
            .map(|g| FileGroup::new(g.files().iter().filter_map(&f).collect()))
            .filter(|g| !g.is_empty())
            .collect();
        if groups.is_empty() {
            return Ok(Transformed::yes(
                Arc::new(EmptyExec::new(node.schema())) as Arc<dyn ExecutionPlan>
            ));
        }
        let builder = FileScanConfigBuilder::from(config.clone());
        let table_schema = Arc::clone(builder.table_schema());
        let all_known = groups
            .iter()
            .flat_map(|g| g.iter())
            .all(|f| f.statistics.is_some());
        let (groups, statistics) = if all_known {
            let sum = |stats: Vec<&Statistics>| Statistics::try_merge_iter(stats, &table_schema);
            let groups = groups
                .into_iter()
                .map(|g| {
                    let s = sum(g.iter().filter_map(|f| f.statistics.as_deref()).collect())?;
                    Ok(g.with_statistics(Arc::new(s)))
                })
                .collect::<Result<Vec<_>>>()?;
            let total = sum(groups
                .iter()
                .filter_map(|g| g.file_statistics(None))
                .collect())?;
            (groups, total)
        } else {
            (groups, Statistics::new_unknown(&table_schema))
        };
        let config = builder
            .with_file_groups(groups)
            .with_statistics(statistics)
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok(mapped.data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use crate::engine::Engine;
    use crate::storage::deletes::{DeletedRows, PendingDeletes};
    use crate::storage::publish::{VersionMeta, publish_version};

    fn ints(values: std::ops::Range<i64>) -> datafusion::execution::SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(values))],
        )
        .unwrap();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    async fn one(engine: &Arc<Engine>, sql: &str) -> String {
        let batches = engine
            .context()
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn queries_never_see_deleted_rows() {
        let engine = Engine::open("memory://").await.unwrap();
        let storage = engine.storage().clone();
        let meta = VersionMeta::default();
        let first = publish_version(&storage, "public", "t", ints(0..10), meta)
            .await
            .unwrap()
            .pointer;
        // Rows 0..8 of the first file go; 100..110 come.
        let pending = Arc::new(PendingDeletes::default());
        pending.put(
            [(
                first.files[0].clone(),
                (10, DeletedRows::new((0..8).collect())),
            )]
            .into(),
        );
        let meta = VersionMeta {
            append_to: Some(first),
            deletes: Some(pending),
            ..VersionMeta::default()
        };
        publish_version(&storage, "public", "t", ints(100..110), meta)
            .await
            .unwrap();
        engine.catalog().refresh().await.unwrap();
        // Not answered from the files' statistics.
        assert!(
            one(&engine, "SELECT count(*) AS n, sum(x) AS s FROM t")
                .await
                .contains("| 12 | 1062 |")
        );
        // A limit is not met by counting deleted rows.
        assert!(
            one(
                &engine,
                "SELECT count(*) AS n FROM (SELECT x FROM t LIMIT 5)"
            )
            .await
            .contains("| 5 ")
        );
        let low = one(&engine, "SELECT x FROM t WHERE x < 100 ORDER BY x").await;
        assert!(
            low.contains("| 8 ") && low.contains("| 9 ") && !low.contains("| 7 "),
            "{low}"
        );
    }
}
