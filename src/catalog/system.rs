//! The `system` schema: what the server's job runner knows, as read-only
//! tables — `system.models` (the DAG, last run, freshness),
//! `system.runs` (every model run) and `system.jobs` (schedules and the
//! next due time). Their rows are asked of an [`Operations`]
//! implementation (the `jobs` module) each time a query scans them, so a
//! query always sees the present. The schema exists once a server
//! registers its operations ([`super::Catalog::set_operations`]).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;

pub const SYSTEM_SCHEMA: &str = "system";

/// The server's job runner, as the catalog and sessions see it.
#[async_trait]
pub trait Operations: Send + Sync + Debug {
    /// The system tables' names and columns.
    fn tables(&self) -> Vec<(&'static str, SchemaRef)>;

    /// The current rows of a system table.
    async fn rows(&self, table: &str) -> Result<RecordBatch>;

    /// Runs models now (`CALL system.run('profiles+')`), as `user`; the
    /// rows describe each model's run.
    async fn run_models(&self, selection: Option<String>, user: &str) -> Result<RecordBatch>;
}

/// The columns of `CALL system.run(…)`'s answer: one row per model run.
pub fn run_result_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        text("run_id"),
        text("model"),
        text("status"),
        text("mode"),
        Field::new("rows", DataType::Int64, true),
        Field::new("seconds", DataType::Float64, true),
        text("error"),
    ]))
}

/// A system table: a scan asks for the current rows.
#[derive(Debug)]
pub struct SystemTable {
    operations: Arc<dyn Operations>,
    name: &'static str,
    schema: SchemaRef,
}

impl SystemTable {
    pub fn new(operations: Arc<dyn Operations>, name: &'static str, schema: SchemaRef) -> Self {
        Self {
            operations,
            name,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .operations
            .rows(self.name)
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
