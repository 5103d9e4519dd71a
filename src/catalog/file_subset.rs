//! A table restricted to some of its files: what an incremental run reads
//! (the raw files that arrived since the last run, or the files of a table
//! that an earlier version had already seen).
//!
//! It wraps the table's own provider, so schemas, casts and hive partition
//! columns stay exactly as a full read has them, and drops the other files
//! from the scans it plans. Statistics are dropped with them: they
//! describe all files.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::storage::Storage;

#[derive(Debug)]
pub struct FileSubset {
    inner: Arc<dyn TableProvider>,
    /// Object store paths of the files to read.
    keep: HashSet<String>,
}

impl FileSubset {
    /// `files`: paths relative to the storage root.
    pub fn new(
        inner: Arc<dyn TableProvider>,
        storage: &Storage,
        files: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Self {
        let keep = files
            .into_iter()
            .map(|f| storage.path(f.as_ref()).to_string())
            .collect();
        Self { inner, keep }
    }
}

#[async_trait::async_trait]
impl TableProvider for FileSubset {
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
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        if self.keep.is_empty() {
            return Ok(Arc::new(EmptyExec::new(plan.schema())));
        }
        map_scanned_files(plan, |f| {
            self.keep
                .contains(f.object_meta.location.as_ref())
                .then(|| f.clone())
        })
    }
}

/// `plan` with each file its scans read replaced by what `f` makes of it
/// (None: not read), and statistics dropped (they describe the files as
/// they were). A scan left with no file reads nothing.
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
        let config = builder
            .with_file_groups(groups)
            .with_statistics(Statistics::new_unknown(&table_schema))
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok(mapped.data)
}
