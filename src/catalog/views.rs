//! Persisted views. A view is stored as its SQL plus the columns it had when
//! created (as PostgreSQL does, a view's columns are fixed at creation), so
//! catalogs can list its columns without planning it. It is planned afresh
//! against the reading session each time it is scanned, so it always reads
//! the current version of the tables below it.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::storage::comments::Comments;
use crate::storage::publish::ColumnDef;

/// A view as stored in `catalog/views/<schema>/<name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewDef {
    pub schema: String,
    pub name: String,
    /// The query, as normalised SQL.
    pub sql: String,
    pub columns: Vec<ColumnDef>,
    /// Relations the query reads, `schema.name`, for dependency checks.
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub created_at: String,
    /// `COMMENT ON` text.
    #[serde(default, skip_serializing_if = "Comments::is_empty")]
    pub comments: Comments,
}

#[derive(Debug)]
pub struct ViewProvider {
    def: ViewDef,
    schema: SchemaRef,
}

impl ViewProvider {
    pub fn new(def: ViewDef, schema: SchemaRef) -> Self {
        Self { def, schema }
    }
}

#[async_trait::async_trait]
impl TableProvider for ViewProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.def.sql)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return plan_err!(
                "view {}.{} needs a full session",
                self.def.schema,
                self.def.name
            );
        };
        // The reader's optimiser runs again over this plan and may swap a
        // join's inputs, which DataFusion refuses once the join holds a
        // dynamic filter: the view's own joins get none (the reader's
        // joins still do).
        let mut state = state.clone();
        state
            .config_mut()
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        let plan = self.logical_plan(&state, projection).await?;
        state.create_physical_plan(&plan).await
    }
}

impl ViewProvider {
    /// The view's query as a logical plan, giving the columns at
    /// `projection` (all when None) with the names and types recorded at
    /// creation. A reader that plans a view into its own query (a model's
    /// incremental build, see `models::changed`) uses it as a subquery.
    pub async fn logical_plan(
        &self,
        state: &SessionState,
        projection: Option<&Vec<usize>>,
    ) -> Result<LogicalPlan> {
        // Resolve names as they were resolved at creation: from `public`.
        let mut state = state.clone();
        state.config_mut().options_mut().catalog.default_schema = "public".to_owned();
        let name = format!("{}.{}", self.def.schema, self.def.name);
        let plan = state
            .create_logical_plan(&self.def.sql)
            .await
            .map_err(|e| {
                DataFusionError::Plan(format!("view {name} can no longer be planned: {e}"))
            })?;
        let actual = plan.schema();
        if actual.fields().len() != self.schema.fields().len() {
            return plan_err!(
                "view {name} is out of date: it had {} columns, its query now gives {}; recreate it",
                self.schema.fields().len(),
                actual.fields().len()
            );
        }
        // Only the columns the reader needs, renamed and cast to those
        // recorded at creation — on the logical plan, so the optimiser
        // prunes what the view reads to what is used (a count of a
        // segment reads no ids).
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let indices = projection.unwrap_or(&all);
        let exprs = indices
            .iter()
            .map(|&i| {
                let want = self.schema.field(i);
                let column =
                    Expr::Column(datafusion::common::Column::from(actual.qualified_field(i)));
                let expr = if actual.field(i).data_type() == want.data_type() {
                    column
                } else {
                    cast(column, want.data_type().clone())
                };
                expr.alias(want.name())
            })
            .collect::<Vec<_>>();
        LogicalPlanBuilder::from(plan).project(exprs)?.build()
    }
}
