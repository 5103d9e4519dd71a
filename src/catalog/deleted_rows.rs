//! A table version with deleted rows (see [`crate::storage::deletes`]): the
//! table's own provider, whose scans read each data file that lost rows
//! through a Parquet row selection of the rows it still has.
//!
//! Limits are not passed down to the file listing (it would stop listing
//! files once their row counts, deleted rows included, reach the limit),
//! and statistics are dropped: they count the deleted rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::physical_plan::ExecutionPlan;

use super::file_subset::map_scanned_files;
use crate::storage::Storage;
use crate::storage::deletes::DeletedRows;

#[derive(Debug)]
pub struct WithDeletedRows {
    inner: Arc<dyn TableProvider>,
    /// Object store path of a data file → the rows it still has.
    selections: HashMap<String, RowSelection>,
}

impl WithDeletedRows {
    /// `deleted`: data file (relative to the storage root) → (its rows,
    /// the deleted ones).
    pub fn new<'a>(
        inner: Arc<dyn TableProvider>,
        storage: &Storage,
        deleted: impl IntoIterator<Item = (&'a String, &'a (u64, DeletedRows))>,
    ) -> Self {
        let selections = deleted
            .into_iter()
            .map(|(file, (rows, d))| (storage.path(file).to_string(), d.selection(*rows)))
            .collect();
        Self { inner, selections }
    }
}

#[async_trait::async_trait]
impl TableProvider for WithDeletedRows {
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
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, None).await?;
        map_scanned_files(plan, |f| {
            let mut f = f.clone();
            if let Some(selection) = self.selections.get(f.object_meta.location.as_ref()) {
                f.statistics = None;
                f = f.with_extension(ParquetRowSelection::new(selection.clone()));
            }
            Some(f)
        })
    }
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
