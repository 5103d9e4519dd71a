//! Statements that write tables: `CREATE [TEMPORARY] TABLE [AS]`,
//! `INSERT`, `DELETE`, `TRUNCATE`, and the catalog changes dbt issues with
//! them (`ALTER … RENAME TO`, `COMMENT ON`, `GRANT`).
//!
//! Each writing statement publishes one new version of the table (see
//! [`crate::storage::publish`]): readers see the table before the
//! statement or after it, never part of it, and a failing statement leaves
//! the table as it was. `INSERT` adds files to the current version;
//! `DELETE` rewrites the table less the rows its condition selects
//! (copy-on-write); `TRUNCATE` publishes an empty version. Each statement
//! commits on its own: `ROLLBACK` does not undo one (see the README).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    DdlStatement, DmlStatement, LogicalPlan, LogicalPlanBuilder, WriteOp, dml::InsertOp,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{EmptyRecordBatchStream, execute_stream};
use datafusion::sql::sqlparser::ast::{
    self, AlterTableOperation, CommentObject, ObjectName, RenameTableNameKind, Statement,
};
use futures::StreamExt;

use super::search_path;
use super::session::{Outcome, Session, not_supported, object_name};
use crate::catalog::{Relation, RelationKind};
use crate::error::{CatalogError, Error, Result};
use crate::storage::publish::{self, Published, TablePointer, VersionMeta};

impl Session {
    /// `CREATE [TEMPORARY] TABLE name (columns)` or `… AS query`.
    pub(super) async fn create_table(&mut self, mut create: ast::CreateTable) -> Result<Outcome> {
        let temporary = std::mem::take(&mut create.temporary);
        create.on_commit = None;
        let (schema, name) = object_name(&create.name)?;
        let schema = match (temporary, schema) {
            (true, _) => self.temp.schema().to_owned(),
            (false, Some(s)) => s,
            (false, None) => self.default_schema(),
        };
        let catalog = Arc::clone(self.engine.catalog());
        catalog.refresh().await?;
        if !temporary {
            catalog.require_schema(&schema)?;
        }
        if catalog.snapshot().relation(&schema, &name).is_some() {
            return if create.if_not_exists {
                Ok(Outcome::command("CREATE TABLE"))
            } else {
                Err(CatalogError::DuplicateTable(format!("{schema}.{name}")).into())
            };
        }
        let as_query = create.query.is_some();
        let plan = self.plan(&Statement::CreateTable(create)).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(table)) = plan else {
            return Err(not_supported("this form of CREATE TABLE"));
        };
        let physical = self.ctx.state().create_physical_plan(&table.input).await?;
        let mut stream = execute_stream(physical, self.ctx.task_ctx())?;
        if as_query {
            // As in PostgreSQL, CREATE TABLE AS declares no column NOT NULL.
            stream = all_nullable(stream);
        }
        let created = self
            .write_table(&schema, &name, stream, "CREATE TABLE", None)
            .await?;
        Ok(if as_query {
            Outcome::rows_affected("SELECT", created.pointer.rows)
        } else {
            Outcome::command("CREATE TABLE")
        })
    }

    /// `INSERT INTO table [(columns)] query|VALUES`: appends a file.
    pub(super) async fn insert(
        &mut self,
        stmt: Statement,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let (dml, table) = self.plan_dml(&stmt, params, "INSERT").await?;
        if !matches!(dml.op, WriteOp::Insert(InsertOp::Append)) {
            return Err(not_supported(&format!("INSERT … {}", dml.op)));
        }
        let physical = self.ctx.state().create_physical_plan(&dml.input).await?;
        let stream = execute_stream(physical, self.ctx.task_ctx())?;
        let published = self
            .write_table(
                &table.schema,
                &table.name,
                stream,
                "INSERT",
                table.pointer.clone(),
            )
            .await?;
        Ok(Outcome::rows_affected("INSERT 0", published.new_rows))
    }

    /// `DELETE FROM table [WHERE condition]`: publishes the table less the
    /// rows the condition selects. Those are found by the plan DataFusion
    /// makes for the statement, so the condition may use subqueries
    /// (`WHERE id IN (SELECT …)`, as dbt's delete+insert sends); the rows
    /// kept are the table's rows that equal none of them (an anti join,
    /// NULLs equal), which is exact because equal rows meet the same
    /// condition.
    pub(super) async fn delete(
        &mut self,
        stmt: Statement,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let (dml, table) = self.plan_dml(&stmt, params, "DELETE").await?;
        let before = table.pointer.as_ref().map_or(0, |p| p.rows);
        let state = self.ctx.state();
        let everything =
            LogicalPlanBuilder::scan(dml.table_name.clone(), Arc::clone(&dml.target), None)?
                .build()?;
        let kept = LogicalPlanBuilder::except(everything, dml.input.as_ref().clone(), true)?;
        let physical = state.create_physical_plan(&kept).await?;
        let stream = execute_stream(physical, self.ctx.task_ctx())?;
        let published = self
            .write_table(&table.schema, &table.name, stream, "DELETE", None)
            .await?;
        Ok(Outcome::rows_affected(
            "DELETE",
            before.saturating_sub(published.pointer.rows),
        ))
    }

    /// `TRUNCATE [TABLE] name, …`: publishes an empty version of each.
    pub(super) async fn truncate(&mut self, truncate: ast::Truncate) -> Result<Outcome> {
        self.engine.catalog().refresh().await?;
        let mut tables = Vec::new();
        for target in &truncate.table_names {
            let (schema, name) = self.qualified(&target.name)?;
            tables.push(self.writable_table(&format!("{schema}.{name}").as_str().into())?);
        }
        for table in tables {
            let stream = Box::pin(EmptyRecordBatchStream::new(Arc::clone(&table.arrow_schema)));
            self.write_table(&table.schema, &table.name, stream, "TRUNCATE", None)
                .await?;
        }
        Ok(Outcome::command("TRUNCATE TABLE"))
    }

    /// `ALTER TABLE|VIEW name RENAME TO new` (PostgreSQL lets `ALTER TABLE`
    /// rename a view, and dbt does so).
    pub(super) async fn alter_table(&mut self, alter: ast::AlterTable) -> Result<Outcome> {
        let [AlterTableOperation::RenameTable { table_name }] = alter.operations.as_slice() else {
            return Err(not_supported(&format!("{alter}")));
        };
        let (RenameTableNameKind::To(new) | RenameTableNameKind::As(new)) = table_name;
        self.engine.catalog().refresh().await?;
        let (schema, name) = self.qualified(&alter.name)?;
        let (new_schema, new_name) = object_name(new)?;
        if new_schema.is_some_and(|s| s != schema) {
            return Err(not_supported("moving a relation to another schema"));
        }
        self.engine
            .catalog()
            .rename(&schema, &name, &new_name, alter.if_exists)
            .await?;
        Ok(Outcome::command("ALTER TABLE"))
    }

    /// `COMMENT ON TABLE|VIEW|COLUMN … IS 'text' | NULL`.
    pub(super) async fn comment(
        &mut self,
        object_type: CommentObject,
        object: &ObjectName,
        text: Option<String>,
    ) -> Result<Outcome> {
        let (relation, column) = match object_type {
            CommentObject::Table | CommentObject::View | CommentObject::MaterializedView => {
                (object.clone(), None)
            }
            CommentObject::Column => {
                let mut parts = object.0.clone();
                let column = parts
                    .pop()
                    .and_then(|p| p.as_ident().map(|i| i.value.clone()))
                    .filter(|_| !parts.is_empty())
                    .ok_or_else(|| not_supported(&format!("COMMENT ON COLUMN {object}")))?;
                (ObjectName(parts), Some(column))
            }
            other => return Err(not_supported(&format!("COMMENT ON {other}"))),
        };
        self.engine.catalog().refresh().await?;
        let (schema, name) = self.qualified(&relation)?;
        self.engine
            .catalog()
            .set_comment(&schema, &name, column.as_deref(), text)
            .await?;
        Ok(Outcome::command("COMMENT"))
    }

    /// Publishes `stream` as the new version of `schema.name` — appended
    /// to `append_to`, or replacing the table — recording which statement
    /// and user wrote it, and makes it visible to the next statement.
    pub(super) async fn write_table(
        &self,
        schema: &str,
        name: &str,
        stream: SendableRecordBatchStream,
        statement: &str,
        append_to: Option<TablePointer>,
    ) -> Result<Published> {
        let published = publish::publish_version(
            self.engine.storage(),
            schema,
            name,
            stream,
            VersionMeta {
                produced_by: Some(format!("{statement} by {}", self.user)),
                append_to,
                ..VersionMeta::default()
            },
        )
        .await?;
        self.engine.catalog().refresh().await?;
        Ok(published)
    }

    /// Plans an INSERT or DELETE with its `$n` parameters bound, and finds
    /// the table it writes.
    async fn plan_dml(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
        what: &str,
    ) -> Result<(DmlStatement, Relation)> {
        let mut plan = self.plan(stmt).await?;
        if let Some(p) = params {
            plan = plan.with_param_values(p)?;
        }
        let LogicalPlan::Dml(dml) = plan else {
            return Err(not_supported(&format!("this form of {what}")));
        };
        let table = self.writable_table(&dml.table_name)?;
        Ok((dml, table))
    }

    /// The schema and name a (possibly unqualified) table name means: a
    /// temporary table first, as in PostgreSQL.
    pub(super) fn qualified(&self, name: &ObjectName) -> Result<(String, String)> {
        let mut name = name.clone();
        search_path::qualify_name(&mut name, &self.engine.catalog().snapshot(), &self.temp);
        let (schema, name) = object_name(&name)?;
        Ok(match schema {
            Some(s) => (s, name),
            None => (self.resolve_schema_of(&name), name),
        })
    }

    /// The table a writing statement targets; raw sources and views are
    /// refused.
    fn writable_table(&self, name: &datafusion::common::TableReference) -> Result<Relation> {
        let schema = name
            .schema()
            .map_or_else(|| self.default_schema(), str::to_owned);
        let snap = self.engine.catalog().snapshot();
        let relation = snap
            .relation(&schema, name.table())
            .ok_or_else(|| CatalogError::UndefinedTable(format!("{schema}.{}", name.table())))?;
        match relation.kind {
            RelationKind::Table => Ok(relation.clone()),
            RelationKind::View => Err(CatalogError::WrongObjectType {
                name: format!("{schema}.{} (a view)", relation.name),
                expected: "table",
            }
            .into()),
            RelationKind::Source => Err(Error::Catalog(CatalogError::ReadOnly(format!(
                "{schema}.{} is a raw source; the landing zone is written by upstream tools",
                relation.name
            )))),
            RelationKind::System => {
                Err(crate::catalog::alter::system_table(&schema, &relation.name))
            }
        }
    }
}

/// The stream with every top-level column nullable.
fn all_nullable(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let fields: Vec<Field> = stream
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches_schema = Arc::clone(&schema);
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        stream.map(move |batch| {
            Ok(RecordBatch::try_new(
                Arc::clone(&batches_schema),
                batch?.columns().to_vec(),
            )?)
        }),
    ))
}
