//! One client's session: parses PostgreSQL-dialect SQL, answers session
//! statements (SET, SHOW, BEGIN, …) itself, persists DDL through the catalog,
//! and hands queries to DataFusion.
//!
//! Every statement first refreshes the catalog (one listing of `catalog/`),
//! so tables published by another process are visible at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, ParamValues};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    self, ObjectName, ObjectType, SchemaName, Set, Statement, Value, ValueWithSpan,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::copy::{CopyFormat, CopyIn};
use super::cursors::{Cursor, Cursors};
use super::temp_tables::TempTables;
use super::{Engine, pg_dialect};
use super::{pg_syntax, search_path};
use crate::catalog::pg_catalog::OWNER;
use crate::catalog::views::ViewDef;
use crate::catalog::{DEFAULT_SCHEMA, SEGMENTS_SCHEMA};
use crate::config::Role;
use crate::error::{CatalogError, Error, Result};
use crate::storage::comments::Comments;
use crate::storage::publish::columns_of;

/// What a statement produced.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        /// The command tag's word (`SELECT`, `FETCH`); the row count
        /// follows it.
        command: &'static str,
    },
    Command {
        tag: String,
        rows: Option<usize>,
        transaction: Option<TransactionChange>,
    },
    /// `COPY … TO STDOUT`: the rows, to send in `format`.
    CopyOut {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        format: CopyFormat,
    },
    /// `COPY … FROM STDIN`: the client sends the data next; the server
    /// hands it to [`Session::copy_in`].
    CopyIn(CopyIn),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionChange {
    Begin,
    End,
}

impl Outcome {
    pub(super) fn command(tag: &str) -> Self {
        Outcome::Command {
            tag: tag.to_owned(),
            rows: None,
            transaction: None,
        }
    }

    /// A command tag with a row count (`INSERT 0 5`, `DELETE 3`).
    pub(super) fn rows_affected(tag: &str, rows: u64) -> Self {
        Outcome::Command {
            tag: tag.to_owned(),
            rows: Some(usize::try_from(rows).unwrap_or(usize::MAX)),
            transaction: None,
        }
    }
}

pub struct Session {
    pub(super) engine: Arc<Engine>,
    pub(super) ctx: SessionContext,
    vars: BTreeMap<String, String>,
    /// What the connected user may do (full rights without users).
    role: Role,
    /// Who is connected (`current_user`).
    pub(super) user: String,
    /// The id the client knows this session by (`pg_backend_pid()`).
    backend_pid: i32,
    pub(super) temp: TempTables,
    cursors: Cursors,
    /// Between BEGIN and COMMIT/ROLLBACK.
    in_transaction: bool,
}

/// How long a statement may go on reading the catalog as another process
/// left it before looking again (see `Catalog::refresh_if_older`).
pub const READ_STALENESS: std::time::Duration = std::time::Duration::from_millis(20);

/// Settings every client may ask for with SHOW, with PostgreSQL's defaults.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.4"),
    ("server_version_num", "160004"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("search_path", "\"$user\", public"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
    ("application_name", ""),
    ("statement_timeout", "0"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("max_identifier_length", "63"),
    ("default_table_access_method", "heap"),
    ("default_tablespace", ""),
    ("bytea_output", "hex"),
    ("extra_float_digits", "1"),
    ("lc_messages", "C.UTF-8"),
    ("lc_monetary", "C.UTF-8"),
    ("lc_numeric", "C.UTF-8"),
    ("lc_time", "C.UTF-8"),
    ("is_superuser", "on"),
];

impl Session {
    pub fn new(engine: Arc<Engine>) -> Self {
        let ctx = engine.context();
        // Positive, as a process id (the client sends it back to cancel).
        let backend_pid = (rand::random::<u32>() >> 1) as i32;
        Self {
            engine,
            ctx,
            vars: BTreeMap::new(),
            role: Role::Admin,
            user: OWNER.to_owned(),
            backend_pid,
            temp: TempTables::new(backend_pid),
            cursors: Cursors::default(),
            in_transaction: false,
        }
    }

    /// The columns of the open cursor `name` (the wire protocol can
    /// describe a cursor as a portal).
    pub fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors.schema(name)
    }

    /// The process id the client was given (BackendKeyData); names the
    /// session's temporary schema.
    pub fn set_backend_pid(&mut self, pid: i32) {
        self.backend_pid = pid;
        self.temp = TempTables::new(pid);
    }

    /// Who is connected (`current_user`).
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn catalog(&self) -> &Arc<crate::catalog::Catalog> {
        self.engine.catalog()
    }

    /// Between BEGIN and COMMIT/ROLLBACK.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// The connected user and what they may do.
    pub fn set_user(&mut self, user: &str, role: Role) {
        if !user.is_empty() {
            self.user = user.to_owned();
        }
        self.role = role;
    }

    /// Refuses what the session's role may not do: an analyst may query,
    /// set session settings, and create or drop views in schema
    /// `segments`; everything else is an admin's.
    fn authorize(&self, stmt: &Statement) -> Result<()> {
        if self.role == Role::Admin {
            return Ok(());
        }
        let in_segments = |n: &ObjectName| {
            object_name(n).is_ok_and(|(schema, _)| {
                schema.unwrap_or_else(|| self.default_schema()) == SEGMENTS_SCHEMA
            })
        };
        let allowed = match stmt {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::Copy { to: true, .. } => true,
            Statement::CreateView(view) => in_segments(&view.name),
            Statement::Drop {
                object_type: ObjectType::View,
                names,
                ..
            } => names.iter().all(in_segments),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            let what = stmt.to_string();
            let what: String = what.chars().take(80).collect();
            Err(Error::PermissionDenied(format!(
                "role analyst may query, and create views in schema {SEGMENTS_SCHEMA}; not: {what}"
            )))
        }
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The value of a setting as SHOW prints it.
    pub fn setting(&self, name: &str) -> Option<String> {
        let key = name.to_ascii_lowercase();
        if key == "is_superuser" {
            return Some(
                if self.role == Role::Admin {
                    "on"
                } else {
                    "off"
                }
                .to_owned(),
            );
        }
        self.vars.get(&key).cloned().or_else(|| {
            DEFAULT_SETTINGS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Parses one or more statements, PostgreSQL dialect, with the rewrites
    /// of [`pg_dialect`] applied.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        // sqlparser's own parser, not DataFusion's: DataFusion's takes
        // `COPY` for its `COPY … TO 'file'`, which is not PostgreSQL's.
        let sql = pg_syntax::normalize(sql);
        let mut statements = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
        for stmt in &mut statements {
            pg_dialect::rewrite(stmt);
        }
        Ok(statements)
    }

    /// Runs every statement of `sql` in order, stopping at the first error.
    pub async fn execute_sql(&mut self, sql: &str) -> Result<Vec<Outcome>> {
        let mut out = Vec::new();
        for stmt in self.parse(sql)? {
            out.push(self.execute(stmt, None).await?);
        }
        Ok(out)
    }

    /// Plans a query statement (for Describe, and to learn parameter types).
    /// Unsupported-subquery fallbacks happen in [`Self::execute`], where the
    /// optimiser reports them.
    pub async fn plan(&self, stmt: &Statement) -> Result<LogicalPlan> {
        self.engine
            .catalog()
            .refresh_if_older(READ_STALENESS)
            .await?;
        let mut stmt = stmt.clone();
        search_path::qualify_relations(&mut stmt, &self.engine.catalog().snapshot(), &self.temp);
        let values = pg_dialect::SessionValues {
            user: &self.user,
            backend_pid: self.backend_pid,
            temp_namespace: crate::catalog::oid::namespace_oid(self.temp.schema()),
            setting: |n: &str| self.setting(n),
        };
        pg_dialect::substitute_session_values(&mut stmt, &values)
            .map_err(|m| Error::Catalog(CatalogError::UndefinedObject(m)))?;
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(plan)
    }

    /// Plans, binds `params`, optimises and plans physically.
    async fn physical_plan(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut plan = self.plan(stmt).await?;
        if let Some(params) = params {
            plan = plan.with_param_values(params)?;
        }
        if matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_)
        ) {
            return Err(not_supported(&stmt.to_string()));
        }
        Ok(self.ctx.state().create_physical_plan(&plan).await?)
    }

    /// Answers a prepared point lookup from the table's key index (see
    /// [`super::lookup`]); None where the fast path does not apply and the
    /// statement must be executed.
    pub async fn point_lookup(
        &self,
        lookup: &super::lookup::PointLookup,
        params: &ParamValues,
        schema: &SchemaRef,
    ) -> Result<Option<Outcome>> {
        let catalog = self.engine.catalog();
        catalog.refresh_if_older(READ_STALENESS).await?;
        let Some(batch) = self
            .engine
            .indexes
            .answer(&self.ctx, catalog, lookup, params, schema)
            .await?
        else {
            return Ok(None);
        };
        let stream = RecordBatchStreamAdapter::new(
            Arc::clone(schema),
            futures::stream::once(async move { Ok(batch) }),
        );
        Ok(Some(Outcome::Rows {
            schema: Arc::clone(schema),
            stream: Box::pin(stream),
            command: "SELECT",
        }))
    }

    /// Runs one statement; `params` binds `$n` placeholders of a query.
    pub async fn execute(
        &mut self,
        stmt: Statement,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        self.authorize(&stmt)?;
        match stmt {
            Statement::Query(_) | Statement::Explain { .. } => {
                for (name, value) in pg_dialect::set_config_calls(&stmt) {
                    self.set_var(&name, &value).await?;
                }
                let physical = match self.physical_plan(&stmt, params.clone()).await {
                    Err(Error::DataFusion(e))
                        if pg_dialect::is_unaggregated_scalar_subquery_error(&e) =>
                    {
                        let mut retry = stmt.clone();
                        pg_dialect::aggregate_scalar_subqueries(&mut retry);
                        self.physical_plan(&retry, params).await?
                    }
                    other => other?,
                };
                let schema = physical.schema();
                let stream = execute_stream(physical, self.ctx.task_ctx())?;
                Ok(Outcome::Rows {
                    schema,
                    stream,
                    command: "SELECT",
                })
            }
            Statement::CreateView(view) => self.create_view(view).await,
            Statement::CreateTable(create) => self.create_table(create).await,
            Statement::Insert(_) => self.insert(stmt, params).await,
            Statement::Delete(_) => self.delete(stmt, params).await,
            Statement::Truncate(truncate) => self.truncate(truncate).await,
            Statement::Copy { .. } => Box::pin(self.copy(stmt)).await,
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::Call(function) => self.call(function).await,
            Statement::Comment {
                object_type,
                object_name,
                comment,
                ..
            } => self.comment(object_type, &object_name, comment).await,
            // Every user reads every table here; privileges are roles.
            Statement::Grant(_) => Ok(Outcome::command("GRANT")),
            Statement::Revoke(_) => Ok(Outcome::command("REVOKE")),
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let name = match &schema_name {
                    SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => {
                        object_name(n)?.1
                    }
                    SchemaName::UnnamedAuthorization(i) => i.value.clone(),
                };
                self.engine
                    .catalog()
                    .create_schema(&name, if_not_exists)
                    .await?;
                Ok(Outcome::command("CREATE SCHEMA"))
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop(object_type, if_exists, &names, cascade).await,
            Statement::Set(set) => self.set(set).await,
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let name = match name.as_str() {
                    "transaction isolation level" => "transaction_isolation".to_owned(),
                    "time zone" => "timezone".to_owned(),
                    other => other.to_owned(),
                };
                if name == "all" {
                    let rows: Vec<(String, String)> = DEFAULT_SETTINGS
                        .iter()
                        .map(|(k, _)| ((*k).to_owned(), self.setting(k).unwrap_or_default()))
                        .collect();
                    return single_column_rows(
                        &["name", "setting"],
                        rows.into_iter().map(|(a, b)| vec![a, b]).collect(),
                    );
                }
                let value = self.setting(&name).ok_or_else(|| {
                    Error::DataFusion(DataFusionError::Plan(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )))
                })?;
                single_column_rows(&[&name], vec![vec![value]])
            }
            Statement::StartTransaction { .. } => {
                self.in_transaction = true;
                Ok(Outcome::Command {
                    tag: "BEGIN".into(),
                    rows: None,
                    transaction: Some(TransactionChange::Begin),
                })
            }
            Statement::Commit { .. } | Statement::Rollback { .. } => {
                self.in_transaction = false;
                self.cursors.end_transaction();
                let tag = if matches!(stmt, Statement::Commit { .. }) {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                Ok(Outcome::Command {
                    tag: tag.into(),
                    rows: None,
                    transaction: Some(TransactionChange::End),
                })
            }
            Statement::Declare { stmts } => {
                for declare in stmts {
                    self.declare_cursor(declare).await?;
                }
                Ok(Outcome::command("DECLARE CURSOR"))
            }
            Statement::Fetch {
                name, direction, ..
            } => self.fetch(&name, &direction).await,
            Statement::Close { cursor } => match cursor {
                ast::CloseCursor::All => {
                    self.cursors.close_all();
                    Ok(Outcome::command("CLOSE CURSOR ALL"))
                }
                ast::CloseCursor::Specific { name } => {
                    self.cursors.close(&search_path::fold(&name))?;
                    Ok(Outcome::command("CLOSE CURSOR"))
                }
            },
            Statement::Discard { .. } => {
                self.cursors.close_all();
                self.vars.clear();
                self.set_default_schema(DEFAULT_SCHEMA);
                Ok(Outcome::command("DISCARD ALL"))
            }
            // Prepared statements live in the wire server's per-connection
            // store, which drops a named one (see server::handler); ALL is
            // accepted, and clients re-prepare under new names after it.
            Statement::Deallocate { .. } => Ok(Outcome::command("DEALLOCATE")),
            other => Err(not_supported(&other.to_string())),
        }
    }

    /// `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    async fn declare_cursor(&mut self, declare: ast::Declare) -> Result<()> {
        let (Some(ast::DeclareType::Cursor), Some(query), [name]) = (
            &declare.declare_type,
            declare.for_query,
            declare.names.as_slice(),
        ) else {
            return Err(not_supported("DECLARE of anything but a cursor"));
        };
        if declare.scroll == Some(true) {
            return Err(not_supported("SCROLL cursors (cursors move forward only)"));
        }
        let hold = declare.hold == Some(true);
        if !hold && !self.in_transaction {
            return Err(CatalogError::NoActiveTransaction.into());
        }
        let physical = self.physical_plan(&Statement::Query(query), None).await?;
        let stream = execute_stream(physical, self.ctx.task_ctx())?;
        self.cursors
            .declare(&search_path::fold(name), Cursor::new(stream, hold))
    }

    /// `FETCH [n | NEXT | FORWARD [n] | ALL | FORWARD ALL] [FROM | IN] name`.
    async fn fetch(
        &mut self,
        name: &ast::Ident,
        direction: &ast::FetchDirection,
    ) -> Result<Outcome> {
        use ast::FetchDirection as D;
        let count = |v: &ValueWithSpan| match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    not_supported("FETCH of a negative count (cursors move forward only)")
                }),
            other => Err(not_supported(&format!("FETCH {other}"))),
        };
        let count = match direction {
            D::Count { limit } | D::Forward { limit: Some(limit) } => Some(count(limit)?),
            D::Next | D::Forward { limit: None } => Some(1),
            D::All | D::ForwardAll => None,
            other => {
                return Err(not_supported(&format!(
                    "FETCH {other} (cursors move forward only)"
                )));
            }
        };
        let (schema, batches) = self.cursors.fetch(&search_path::fold(name), count).await?;
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ));
        Ok(Outcome::Rows {
            schema,
            stream,
            command: "FETCH",
        })
    }

    async fn create_view(&mut self, view: ast::CreateView) -> Result<Outcome> {
        if view.materialized {
            return Err(not_supported(
                "CREATE MATERIALIZED VIEW (write a model in sql/ instead)",
            ));
        }
        let (schema, name) = object_name(&view.name)?;
        let schema = schema.unwrap_or_else(|| self.default_schema());
        let query_stmt = Statement::Query(view.query.clone());
        let plan = self.plan(&query_stmt).await?;
        let mut arrow_schema = plan.schema().as_arrow().clone();
        if !view.columns.is_empty() {
            if view.columns.len() != arrow_schema.fields().len() {
                return Err(Error::DataFusion(DataFusionError::Plan(format!(
                    "CREATE VIEW {schema}.{name} names {} columns but its query returns {}",
                    view.columns.len(),
                    arrow_schema.fields().len()
                ))));
            }
            let fields: Vec<Field> = view
                .columns
                .iter()
                .zip(arrow_schema.fields())
                .map(|(c, f)| f.as_ref().clone().with_name(c.name.value.clone()))
                .collect();
            arrow_schema = Schema::new(fields);
        }
        let mut seen = std::collections::HashSet::new();
        for f in arrow_schema.fields() {
            if !seen.insert(f.name().clone()) {
                return Err(Error::DataFusion(DataFusionError::Plan(format!(
                    "column \"{}\" specified more than once in view {schema}.{name}",
                    f.name()
                ))));
            }
        }
        let state = self.ctx.state();
        let refs = state.resolve_table_references(&DFStatement::Statement(Box::new(query_stmt)))?;
        let depends_on = refs
            .iter()
            .map(|r| {
                let r = r
                    .clone()
                    .resolve(super::CATALOG_NAME, &self.default_schema());
                format!("{}.{}", r.schema, r.table)
            })
            .collect();
        let mut sql = view.query.to_string();
        if !view.columns.is_empty() {
            // Apply the column names inside the stored SQL, so the view's
            // query alone yields its columns.
            let names = view
                .columns
                .iter()
                .map(|c| format!("\"{}\"", c.name.value.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ");
            sql = format!("SELECT * FROM ({sql}) AS v({names})");
        }
        let def = ViewDef {
            schema,
            name,
            sql,
            columns: columns_of(&arrow_schema),
            depends_on,
            created_at: chrono::Utc::now().to_rfc3339(),
            comments: Comments {
                relation: view.comment.clone(),
                ..Comments::default()
            },
        };
        self.engine
            .catalog()
            .create_view(def, view.or_replace)
            .await?;
        Ok(Outcome::command("CREATE VIEW"))
    }

    async fn drop(
        &mut self,
        object_type: ObjectType,
        if_exists: bool,
        names: &[ObjectName],
        cascade: bool,
    ) -> Result<Outcome> {
        let catalog = Arc::clone(self.engine.catalog());
        catalog.refresh().await?;
        for n in names {
            match object_type {
                ObjectType::Schema => {
                    let (_, name) = object_name(n)?;
                    catalog.drop_schema(&name, if_exists, cascade).await?
                }
                ObjectType::View | ObjectType::Table => {
                    let (schema, name) = self.qualified(n)?;
                    if object_type == ObjectType::View {
                        catalog
                            .drop_view(&schema, &name, if_exists, cascade)
                            .await?;
                    } else {
                        catalog
                            .drop_table(&schema, &name, if_exists, cascade)
                            .await?;
                    }
                }
                other => return Err(not_supported(&format!("DROP {other}"))),
            }
        }
        Ok(Outcome::command(&format!("DROP {object_type}")))
    }

    async fn set(&mut self, set: Set) -> Result<Outcome> {
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_ascii_lowercase();
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(ValueWithSpan {
                            value: Value::SingleQuotedString(s) | Value::DoubleQuotedString(s),
                            ..
                        }) => s.clone(),
                        ast::Expr::Identifier(i) => i.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.set_var(&name, &value).await?;
            }
            Set::SetTimeZone { value, .. } => {
                let v = match &value {
                    ast::Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(s),
                        ..
                    }) => s.clone(),
                    other => other.to_string(),
                };
                self.set_var("timezone", &v).await?;
            }
            Set::SetNames { .. }
            | Set::SetNamesDefault {}
            | Set::SetTransaction { .. }
            | Set::SetRole { .. } => {}
            Set::SetSessionAuthorization(_) => {}
            other => return Err(not_supported(&other.to_string())),
        }
        Ok(Outcome::command("SET"))
    }

    /// Sets a variable; `datafusion.*` names go to DataFusion's own options.
    pub async fn set_var(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if name.starts_with("datafusion.") {
            self.ctx
                .sql(&format!("SET {name} = '{}'", value.replace('\'', "''")))
                .await?;
            return Ok(());
        }
        if name == "search_path" {
            let first = value
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .find(|s| !s.is_empty() && *s != "$user")
                .unwrap_or(DEFAULT_SCHEMA)
                .to_owned();
            self.set_default_schema(&first);
        }
        self.vars.insert(name, value.to_owned());
        Ok(())
    }

    fn set_default_schema(&self, schema: &str) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = schema.to_owned();
    }

    pub fn default_schema(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    /// The schema an unqualified name resolves to: the default schema, else
    /// `public`.
    pub(super) fn resolve_schema_of(&self, name: &str) -> String {
        let default = self.default_schema();
        let snap = self.engine.catalog().snapshot();
        if snap.relation(&default, name).is_some() {
            default
        } else {
            DEFAULT_SCHEMA.to_owned()
        }
    }
}

impl Drop for Session {
    /// Drops the session's temporary tables, in the background.
    fn drop(&mut self) {
        let catalog = Arc::clone(self.engine.catalog());
        if !self.temp.any(&catalog.snapshot()) {
            return;
        }
        let schema = self.temp.schema().to_owned();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = catalog.drop_schema(&schema, true, true).await {
                    tracing::warn!(%schema, error = %e, "could not drop temporary tables");
                }
            });
        }
    }
}

pub(super) fn not_supported(what: &str) -> Error {
    Error::DataFusion(DataFusionError::NotImplemented(format!(
        "not supported yet: {what}"
    )))
}

/// `(schema, name)` of a possibly qualified name, normalised as PostgreSQL
/// does (unquoted identifiers fold to lower case).
pub fn object_name(name: &ObjectName) -> Result<(Option<String>, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            let ident = p.as_ident().ok_or_else(|| {
                Error::Catalog(CatalogError::ReadOnly(format!(
                    "unsupported object name {name}"
                )))
            })?;
            Ok(search_path::fold(ident))
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [n] => Ok((None, n.clone())),
        [s, n] => Ok((Some(s.clone()), n.clone())),
        [_, s, n] => Ok((Some(s.clone()), n.clone())),
        _ => Err(Error::Catalog(CatalogError::ReadOnly(format!(
            "invalid name {name}"
        )))),
    }
}

/// A small all-text result.
fn single_column_rows(columns: &[&str], rows: Vec<Vec<String>>) -> Result<Outcome> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as _
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        futures::stream::iter(vec![Ok(batch)]),
    ));
    Ok(Outcome::Rows {
        schema,
        stream,
        command: "SHOW",
    })
}
