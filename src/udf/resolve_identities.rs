//! `resolve_identities('occurrences' [, 'rules'])`: a table function that
//! resolves the identifier occurrences in a table (columns `source`,
//! `row_key`, `ts`, `id_type`, `id_value`, and optionally `reject_reason`)
//! into profiles, following the rules table (see
//! [`crate::identity::rules`]; without one, only `user_id` is limited, to
//! one per profile); see
//! [`crate::identity::resolve`] for the rules and the output columns.
//!
//! The work happens when the plan executes (not when it is planned), on a
//! blocking thread, over the input collected from all partitions.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect,
};
use futures::StreamExt;

use crate::identity::resolve::{INPUT_COLUMNS, input_schema, output_schema, resolve};
use crate::identity::rules::{RULE_COLUMNS, Rules};

/// Rows per output batch.
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug)]
pub struct ResolveIdentitiesFunc;

impl TableFunctionImpl for ResolveIdentitiesFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let text = |i: usize| super::text_literal("resolve_identities", exprs, i);
        let Some(table) = text(0)? else {
            return plan_err!(
                "resolve_identities('occurrences' [, 'rules']) needs the name of a table of identifier occurrences"
            );
        };
        if exprs.len() > 2 {
            return plan_err!(
                "resolve_identities takes at most 2 arguments, got {}",
                exprs.len()
            );
        }
        Ok(Arc::new(ResolveIdentitiesTable {
            table,
            rules_table: text(1)?,
        }))
    }
}

#[derive(Debug)]
struct ResolveIdentitiesTable {
    table: String,
    rules_table: Option<String>,
}

#[async_trait::async_trait]
impl TableProvider for ResolveIdentitiesTable {
    fn schema(&self) -> SchemaRef {
        output_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = super::full_session("resolve_identities", state)?;
        // `reject_reason` is optional: read it only if the table has it.
        let probe = state
            .create_logical_plan(&format!("SELECT * FROM {}", self.table))
            .await?;
        let has_reason = probe
            .schema()
            .has_column_with_unqualified_name("reject_reason");
        let columns = INPUT_COLUMNS
            .map(|c| match c {
                "reject_reason" if !has_reason => {
                    "CAST(NULL AS VARCHAR) AS reject_reason".to_owned()
                }
                c => format!("\"{c}\""),
            })
            .join(", ");
        let sql = format!("SELECT {columns} FROM {}", self.table);
        let plan = state.create_logical_plan(&sql).await.map_err(|e| {
            DataFusionError::Plan(format!(
                "resolve_identities: input table {} must have columns {} (and may have reject_reason): {e}",
                self.table,
                INPUT_COLUMNS[..5].join(", ")
            ))
        })?;
        let input = state.create_physical_plan(&plan).await?;
        let rules = match &self.rules_table {
            None => None,
            Some(rules_table) => {
                let columns = RULE_COLUMNS.map(|c| format!("\"{c}\"")).join(", ");
                let plan = state
                    .create_logical_plan(&format!("SELECT {columns} FROM {rules_table}"))
                    .await
                    .map_err(|e| {
                        DataFusionError::Plan(format!(
                            "resolve_identities: rules table {rules_table} must have columns {}: {e}",
                            RULE_COLUMNS.join(", ")
                        ))
                    })?;
                Some(state.create_physical_plan(&plan).await?)
            }
        };
        let exec: Arc<dyn ExecutionPlan> = Arc::new(ResolveIdentitiesExec::new(input, rules));
        match projection {
            None => Ok(exec),
            Some(indices) => Ok(Arc::new(ProjectionExec::try_new(
                indices.iter().map(|&i| {
                    let field = output_schema().field(i).clone();
                    (
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            field.name(),
                            i,
                        ))
                            as Arc<dyn datafusion::physical_expr::PhysicalExpr>,
                        field.name().clone(),
                    )
                }),
                exec,
            )?)),
        }
    }
}

/// Collects its input (and its rules), resolves identities, emits the result.
#[derive(Debug)]
pub struct ResolveIdentitiesExec {
    input: Arc<dyn ExecutionPlan>,
    rules: Option<Arc<dyn ExecutionPlan>>,
    properties: Arc<PlanProperties>,
}

impl ResolveIdentitiesExec {
    fn new(input: Arc<dyn ExecutionPlan>, rules: Option<Arc<dyn ExecutionPlan>>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            input,
            rules,
            properties,
        }
    }
}

impl DisplayAs for ResolveIdentitiesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ResolveIdentitiesExec: rules={}",
            if self.rules.is_some() {
                "table"
            } else {
                "builtin"
            }
        )
    }
}

impl ExecutionPlan for ResolveIdentitiesExec {
    fn name(&self) -> &str {
        "ResolveIdentitiesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        std::iter::once(&self.input)
            .chain(self.rules.as_ref())
            .collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [input] => Ok(Arc::new(Self::new(Arc::clone(input), None))),
            [input, rules] => Ok(Arc::new(Self::new(
                Arc::clone(input),
                Some(Arc::clone(rules)),
            ))),
            _ => plan_err!("ResolveIdentitiesExec takes occurrences and optionally rules"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return plan_err!("ResolveIdentitiesExec has one partition, asked for {partition}");
        }
        let input = Arc::clone(&self.input);
        let rules_plan = self.rules.clone();
        let work = async move {
            let rules = match rules_plan {
                Some(plan) => Rules::from_batches(&collect(plan, Arc::clone(&context)).await?)?,
                None => Rules::builtin(),
            };
            let batches = collect(input, context).await?;
            let target = input_schema();
            let batches = batches
                .iter()
                .map(|b| {
                    let columns = target
                        .fields()
                        .iter()
                        .zip(b.columns())
                        .map(|(f, c)| cast(c, f.data_type()))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(RecordBatch::try_new(Arc::clone(&target), columns)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let out = tokio::task::spawn_blocking(move || resolve(&batches, &rules))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??;
            let chunks: Vec<Result<RecordBatch>> = (0..out.num_rows())
                .step_by(BATCH_ROWS)
                .map(|start| Ok(out.slice(start, BATCH_ROWS.min(out.num_rows() - start))))
                .collect();
            Ok::<_, DataFusionError>(futures::stream::iter(chunks))
        };
        let stream = futures::stream::once(work)
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            output_schema(),
            stream,
        )))
    }
}
