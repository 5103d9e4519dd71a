//! A connection's startup: protocol negotiation, authentication (SCRAM-SHA-256
//! when users are configured, see [`super::auth`]; trust otherwise), the
//! session's role and `options=-c k=v` settings, and the parameters
//! PostgreSQL 16 reports.

use pgwire::api::ConnectionManager;
use pgwire::messages::startup::SecretKey;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::{SASLState, SCRAM_SHA_256_METHOD};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use super::Security;
use super::activity::{ConnectionSignals, Registered};
use super::auth::Users;
use super::interrupt::CancelHandle;
use super::sqlstate;
use crate::catalog::backends::NewBackend;
use crate::config::Role;
use crate::engine::Session;
use crate::engine::session::DEFAULT_SETTINGS;

pub struct Startup {
    session: Arc<Mutex<Session>>,
    /// The configured users and the SCRAM exchange that checks them.
    auth: Option<(Arc<Users>, ScramAuth)>,
    /// TLS is configured: a client from another host must use it.
    tls: bool,
    /// The SCRAM exchange in progress, and the startup `options`.
    state: Mutex<(SASLState, Option<String>)>,
    /// Where the connection registers for cancel requests.
    running: Arc<ConnectionManager>,
    /// Notified by `pg_terminate_backend`.
    terminate: Arc<tokio::sync::Notify>,
}

impl Startup {
    pub fn new(
        session: Arc<Mutex<Session>>,
        security: &Security,
        running: &Arc<ConnectionManager>,
        terminate: &Arc<tokio::sync::Notify>,
    ) -> Self {
        let auth = security
            .users
            .as_ref()
            .map(|u| (Arc::clone(u), ScramAuth::new(Arc::clone(u) as _)));
        Self {
            session,
            auth,
            tls: security.tls.is_some(),
            state: Mutex::new((SASLState::Initial, None)),
            running: Arc::clone(running),
            terminate: Arc::clone(terminate),
        }
    }

    /// Applies the startup settings and role, reports the parameters, and
    /// makes the connection ready for queries.
    async fn complete<C>(
        &self,
        client: &mut C,
        options: Option<String>,
        role: Role,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let user = login_user(client);
        session.set_user(&user, role);
        // The pid and key a cancel request must name (BackendKeyData);
        // the pid is also `pg_backend_pid()` and names `pg_temp_<pid>`.
        let secret = SecretKey::I32(rand::random());
        client.set_pid_and_secret_key(session.backend_pid(), secret.clone());
        let (handle, registration) = self.running.register(session.backend_pid(), secret);
        client.session_extensions().insert(registration);
        // `options=-c search_path=dbt_x -c statement_timeout=0` (dbt, psql -o)
        if let Some(options) = options {
            for (k, v) in parse_options(&options) {
                session
                    .set_var(&k, &v)
                    .await
                    .map_err(|e| sqlstate::to_pg_error(&e))?;
            }
        }
        if let Some(app) = client
            .metadata()
            .get(pgwire::api::METADATA_APPLICATION_NAME)
            .cloned()
        {
            session
                .set_var("application_name", &app)
                .await
                .map_err(|e| sqlstate::to_pg_error(&e))?;
        }
        // pg_stat_activity, and the signals other connections may send.
        let backend = session.catalog().backends().register(NewBackend {
            pid: session.backend_pid(),
            user: session.user().to_owned(),
            role,
            application_name: session.setting("application_name").unwrap_or_default(),
            client_addr: Some(client.socket_addr()),
            signals: Box::new(ConnectionSignals {
                cancel: Arc::clone(&handle),
                terminate: Arc::clone(&self.terminate),
            }),
        });
        client.session_extensions().insert(Registered(backend));
        client.session_extensions().insert(CancelHandle(handle));
        let mut params: HashMap<String, String> = HashMap::new();
        for key in [
            "server_version",
            "server_encoding",
            "client_encoding",
            "integer_datetimes",
            "standard_conforming_strings",
            "is_superuser",
            "application_name",
            "search_path",
        ] {
            params.insert(key.to_owned(), session.setting(key).unwrap_or_default());
        }
        for (name, key) in [
            ("DateStyle", "datestyle"),
            ("TimeZone", "timezone"),
            ("IntervalStyle", "intervalstyle"),
        ] {
            params.insert(name.into(), session.setting(key).unwrap_or_default());
        }
        params.insert("session_authorization".into(), user);
        debug_assert!(DEFAULT_SETTINGS.iter().any(|(k, _)| *k == "server_version"));
        drop(session);
        finish_authentication(client, &Parameters(params)).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

/// The user named in the startup message.
fn login_user(client: &impl ClientInfo) -> String {
    client
        .metadata()
        .get(pgwire::api::METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

struct Parameters(HashMap<String, String>);

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, _client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(self.0.clone())
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let options = startup.parameters.get("options").cloned();
                if self.tls && !client.is_secure() && !client.socket_addr().ip().is_loopback() {
                    return Err(fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "this server requires TLS from other hosts (sslmode=require)".into(),
                    ));
                }
                if self.auth.is_none() {
                    return self.complete(client, options, Role::Admin).await;
                }
                *self.state.lock().await = (SASLState::ScramClientFirstReceived, options);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![SCRAM_SHA_256_METHOD.to_owned()],
                    )))
                    .await?;
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let Some((users, scram)) = &self.auth else {
                    return Err(PgWireError::NoAuthenticationInProgress);
                };
                let mut state = self.state.lock().await;
                let (reply, next, _) = scram.process_scram_message(client, msg, &state.0).await?;
                client
                    .send(PgWireBackendMessage::Authentication(reply))
                    .await?;
                let done = matches!(next, SASLState::Finished);
                state.0 = next;
                if !done {
                    return Ok(());
                }
                let options = state.1.take();
                drop(state);
                let user = login_user(client);
                let role = users
                    .role(&user)
                    .ok_or_else(|| PgWireError::InvalidPassword(user.clone()))?;
                self.complete(client, options, role).await
            }
            _ => Ok(()),
        }
    }
}

/// `-c a=b -c c=d` or `--a=b` → pairs.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let kv = if w == "-c" {
            words.next().map(str::to_owned)
        } else if let Some(rest) = w.strip_prefix("-c") {
            Some(rest.to_owned())
        } else {
            w.strip_prefix("--").map(str::to_owned)
        };
        if let Some((k, v)) = kv.as_deref().and_then(|kv| kv.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_options;

    #[test]
    fn startup_options_are_parsed() {
        assert_eq!(
            parse_options("-c search_path=dbt_ana -csearch_path=x --statement-timeout=5"),
            vec![
                ("search_path".into(), "dbt_ana".into()),
                ("search_path".into(), "x".into()),
                ("statement_timeout".into(), "5".into()),
            ]
        );
    }
}
