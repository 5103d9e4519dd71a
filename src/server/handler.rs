//! One client connection: its [`Session`] and the pgwire handlers that feed
//! it. A handler is created per socket, so nothing a client sets (search
//! path, variables, prepared statements) is visible to another.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::sql::sqlparser::ast::Statement;
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::Mutex;

use super::activity;
use super::copy::{self, Incoming};
use super::interrupt::{CancelHandle, Interrupt};
use super::startup::Startup;
use super::{Security, encode, params, sqlstate};
use crate::catalog::backends::Busy;
use crate::engine::lookup::PointLookup;
use crate::engine::session::TransactionChange;
use crate::engine::{Engine, Outcome, Session};
use crate::engine::{pg_dialect, search_path};
use crate::error::Error;

/// A statement prepared with Parse.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The text the client sent (`pg_stat_activity.query`).
    pub sql: String,
    pub statement: Statement,
    /// Parameter types: declared by the client, else inferred.
    pub param_types: Vec<Type>,
    /// Inferred Arrow types of `$1..$n`, to cast text parameters to.
    pub param_arrow_types: Vec<Option<DataType>>,
    /// The result columns, when the statement returns rows.
    pub schema: Option<Arc<Schema>>,
    /// Set when the statement is a point lookup an index can answer.
    pub lookup: Option<PointLookup>,
}

pub struct Connection {
    session: Arc<Mutex<Session>>,
    parser: Arc<Parser>,
    /// A `COPY … FROM STDIN` receiving data.
    incoming: std::sync::Mutex<Option<Incoming>>,
}

impl Connection {
    pub fn new(engine: &Arc<Engine>) -> Self {
        let session = Arc::new(Mutex::new(engine.session()));
        Self {
            parser: Arc::new(Parser {
                session: Arc::clone(&session),
            }),
            session,
            incoming: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn session(&self) -> &Mutex<Session> {
        &self.session
    }

    pub(super) fn incoming(&self) -> std::sync::MutexGuard<'_, Option<Incoming>> {
        self.incoming.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The response to one statement's outcome; `busy` keeps the
    /// connection active in `pg_stat_activity` until its rows are sent.
    fn respond(
        &self,
        outcome: Outcome,
        format: &Format,
        interrupt: &Interrupt,
        busy: Option<Arc<Busy>>,
    ) -> Response {
        let guard = |stream| activity::hold(interrupt.guard(stream), busy);
        match outcome {
            Outcome::CopyOut {
                schema,
                stream,
                format,
            } => Response::CopyOut(copy::copy_out(&schema, guard(stream), &format)),
            Outcome::CopyIn(target) => {
                let columns = target.columns.len();
                *self.incoming() = Some(Incoming {
                    target,
                    data: Vec::new(),
                });
                Response::CopyIn(CopyResponse::new(0, columns, futures::stream::empty()))
            }
            Outcome::Rows {
                schema,
                stream,
                command,
            } => {
                let fields = Arc::new(encode::fields(&schema, format));
                let rows = encode::rows(guard(stream), Arc::clone(&fields));
                let mut response = QueryResponse::new(fields, rows);
                response.set_command_tag(command);
                Response::Query(response)
            }
            Outcome::Command {
                tag,
                rows,
                transaction,
            } => {
                let mut t = Tag::new(&tag);
                if let Some(r) = rows {
                    t = t.with_rows(r);
                }
                match transaction {
                    Some(TransactionChange::Begin) => Response::TransactionStart(t),
                    Some(TransactionChange::End) => Response::TransactionEnd(t),
                    None => Response::Execution(t),
                }
            }
        }
    }
}

fn pg_err(e: Error) -> PgWireError {
    sqlstate::to_pg_error(&e)
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let interrupt = interrupt(client).await;
        let busy = activity::begin(client, query, session.in_transaction());
        let statements = match session.parse(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        let mut out = Vec::with_capacity(statements.len());
        for stmt in statements {
            if let Statement::Deallocate { name, .. } = &stmt
                && !name.value.eq_ignore_ascii_case("all")
            {
                pgwire::api::store::PortalStore::rm_statement(client.portal_store(), &name.value);
            }
            let interrupt = interrupt.statement(session.setting("statement_timeout").as_deref());
            let result = interrupt.run(session.execute(stmt, None)).await;
            activity::executed(busy.as_deref(), &session);
            match result {
                Ok(outcome) => {
                    out.push(self.respond(outcome, &Format::UnifiedText, &interrupt, busy.clone()))
                }
                Err(e) => {
                    // Like PostgreSQL: the error ends the batch.
                    out.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// As in PostgreSQL, a cursor is also a portal of the same name, so a
/// client can Describe it (psycopg does, after `DECLARE`); `CLOSE`
/// removes it.
fn expose_cursors<C>(client: &C, session: &Session, statement: &Statement)
where
    C: ClientPortalStore,
    C::PortalStore: pgwire::api::store::PortalStore<Statement = Prepared>,
{
    use pgwire::api::store::PortalStore;
    let store = client.portal_store();
    match statement {
        Statement::Declare { stmts } => {
            for declare in stmts {
                let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                    continue;
                };
                let name = search_path::fold(name);
                let Some(schema) = session.cursor_schema(&name) else {
                    continue;
                };
                let prepared = Prepared {
                    sql: query.to_string(),
                    statement: Statement::Query(query.clone()),
                    param_types: Vec::new(),
                    param_arrow_types: Vec::new(),
                    schema: Some(schema),
                    lookup: None,
                };
                let stored = Arc::new(StoredStatement::new(name.clone(), prepared, Vec::new()));
                store.put_portal(Arc::new(Portal::new_cursor(name, stored)));
            }
        }
        Statement::Close {
            cursor: datafusion::sql::sqlparser::ast::CloseCursor::Specific { name },
        } => store.rm_portal(&search_path::fold(name)),
        _ => {}
    }
}

/// What may stop the statements of this message: a cancel request for
/// this connection (and, per statement, the session's
/// `statement_timeout`).
async fn interrupt(client: &impl ClientInfo) -> Interrupt {
    let cancel = match client.session_extensions().get::<CancelHandle>() {
        Some(handle) => Some(handle.0.start_query().await),
        None => None,
    };
    Interrupt::new(cancel)
}

fn error_info(e: &Error) -> pgwire::error::ErrorInfo {
    let (code, message) = sqlstate::classify(e);
    sqlstate::error_info(code, message)
}

pub struct Parser {
    session: Arc<Mutex<Session>>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = self.session.lock().await;
        let mut statements = session.parse(sql).map_err(pg_err)?;
        if statements.len() > 1 {
            return Err(PgWireError::UserError(Box::new(sqlstate::error_info(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement".into(),
            ))));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let mut lookup = None;
        let (schema, inferred) = match &statement {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::Insert(_)
            | Statement::Delete(_) => {
                let plan = session.plan(&statement).await.map_err(pg_err)?;
                let found = plan.get_parameter_types().map_err(|e| pg_err(e.into()))?;
                let mut inferred: Vec<Option<DataType>> = Vec::new();
                for (name, ty) in found {
                    if let Some(n) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                        if inferred.len() < n {
                            inferred.resize(n, None);
                        }
                        inferred[n - 1] = ty;
                    }
                }
                for (n, ty) in pg_dialect::placeholder_types(&statement) {
                    if inferred.len() < n {
                        inferred.resize(n, None);
                    }
                    inferred[n - 1].get_or_insert(ty);
                }
                let rows = matches!(&statement, Statement::Query(_) | Statement::Explain { .. });
                let schema = rows.then(|| Arc::new(plan.schema().as_arrow().clone()));
                lookup = PointLookup::recognise(&plan, &session.default_schema());
                (schema, inferred)
            }
            Statement::Call(_) => (
                Some(crate::catalog::system::run_result_schema()),
                Vec::new(),
            ),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join("_");
                let schema = Schema::new(vec![datafusion::arrow::datatypes::Field::new(
                    name,
                    DataType::Utf8,
                    true,
                )]);
                (Some(Arc::new(schema)), Vec::new())
            }
            _ => (None, Vec::new()),
        };
        let n = inferred.len().max(types.len());
        let param_types = (0..n)
            .map(|i| {
                types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| {
                        inferred
                            .get(i)
                            .cloned()
                            .flatten()
                            .map(|dt| encode::wire_type(&dt))
                    })
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(Some(Prepared {
            sql: sql.to_owned(),
            statement,
            param_types,
            param_arrow_types: inferred,
            schema,
            lookup,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(stmt
            .schema
            .as_ref()
            .map(|s| encode::fields(s, column_format.unwrap_or(&Format::UnifiedText)))
            .unwrap_or_default())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let values = params::decode(portal, &prepared.param_types, &prepared.param_arrow_types)?;
        let params = (portal.parameter_len() > 0).then_some(values);
        let mut session = self.session.lock().await;
        let interrupt = interrupt(client).await;
        let interrupt = interrupt.statement(session.setting("statement_timeout").as_deref());
        let busy = activity::begin(client, &prepared.sql, session.in_transaction());
        let result = interrupt
            .run(async {
                if let (Some(lookup), Some(params), Some(schema)) =
                    (&prepared.lookup, &params, &prepared.schema)
                    && let Some(answer) = session.point_lookup(lookup, params, schema).await?
                {
                    return Ok(answer);
                }
                session.execute(prepared.statement.clone(), params).await
            })
            .await;
        activity::executed(busy.as_deref(), &session);
        match result {
            Ok(outcome) => {
                expose_cursors(client, &session, &prepared.statement);
                Ok(self.respond(outcome, &portal.result_column_format, &interrupt, busy))
            }
            Err(e) => Err(pg_err(e)),
        }
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        stmt: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let p = &stmt.statement;
        let fields = p
            .schema
            .as_ref()
            .map(|s| encode::fields(s, &Format::UnifiedText))
            .unwrap_or_default();
        Ok(DescribeStatementResponse::new(
            p.param_types.clone(),
            fields,
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = portal
            .statement
            .statement
            .schema
            .as_ref()
            .map(|s| encode::fields(s, &portal.result_column_format))
            .unwrap_or_default();
        Ok(DescribePortalResponse::new(fields))
    }
}

/// The handlers of one connection.
pub struct Handlers {
    connection: Arc<Connection>,
    /// Notified by `pg_terminate_backend`.
    terminate: Arc<tokio::sync::Notify>,
    startup: Arc<Startup>,
    running: Arc<ConnectionManager>,
}

impl Handlers {
    pub fn new(
        engine: &Arc<Engine>,
        security: &Security,
        running: &Arc<ConnectionManager>,
    ) -> Self {
        let connection = Arc::new(Connection::new(engine));
        let terminate = Arc::new(tokio::sync::Notify::new());
        let startup = Arc::new(Startup::new(
            Arc::clone(&connection.session),
            security,
            running,
            &terminate,
        ));
        Self {
            connection,
            terminate,
            startup,
            running: Arc::clone(running),
        }
    }
}

impl Handlers {
    /// Notified when `pg_terminate_backend` names this connection.
    pub fn terminate(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.terminate)
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::clone(&self.connection)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.running)))
    }
}
