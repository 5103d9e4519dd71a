//! The PostgreSQL wire server. Only this module uses `pgwire`.
//!
//! [`serve`] takes a bound listener, the engine and a shutdown future, so
//! tests bind `127.0.0.1:0` and stop it when they like. Each connection gets
//! its own handlers and session. Past `max_connections` a client gets
//! SQLSTATE 53300 and is closed. On shutdown the listener stops accepting,
//! open connections get a grace period to finish, then are closed.
//!
//! Security ([`Security`]): with no users configured, connections are
//! trusted with full rights — and [`check_listen`] then refuses any address
//! that is not loopback. With users ([`auth`]), every connection proves a
//! password by SCRAM-SHA-256 and gets its user's role. With TLS ([`tls`]),
//! clients may negotiate it, and a client from another host must.

mod activity;
pub mod auth;
mod copy;
mod encode;
mod handler;
mod interrupt;
mod params;
pub mod sqlstate;
mod startup;
pub mod tls;

use pgwire::api::ConnectionManager;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tokio_rustls::TlsAcceptor;

use crate::config::ConfigFile;
use crate::engine::Engine;
use crate::error::{Error, Result};
use auth::Users;

#[derive(Clone)]
pub struct ServerOptions {
    pub max_connections: usize,
    /// How long open connections may run on after shutdown is asked for.
    pub drain: Duration,
    pub security: Security,
    /// Bytes of published table versions kept in memory, decoded
    /// (`catalog::resident`); 0 reads Parquet every time.
    pub resident_memory: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 100,
            drain: Duration::from_secs(5),
            security: Security::default(),
            resident_memory: crate::catalog::resident::DEFAULT_BUDGET,
        }
    }
}

/// Who may connect, and how.
#[derive(Clone, Default)]
pub struct Security {
    /// None: no users configured, connections are trusted (loopback only).
    pub users: Option<Arc<Users>>,
    pub tls: Option<TlsAcceptor>,
}

impl Security {
    /// The users and TLS of a configuration file; fails (closed) when its
    /// TLS files cannot be used.
    pub fn from_config(config: &ConfigFile) -> Result<Self> {
        Ok(Self {
            users: Users::from_config(config)?.map(Arc::new),
            tls: match &config.tls {
                Some(t) => Some(tls::acceptor(&t.cert, &t.key)?),
                None => None,
            },
        })
    }
}

/// Refuses addresses that would expose a server without authentication.
pub fn check_listen(addr: &SocketAddr, authenticated: bool) -> Result<()> {
    if addr.ip().is_loopback() || authenticated {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "refusing to listen on {addr}: no users are configured, so connections are not \
             authenticated and the server only listens on loopback (127.0.0.1 or ::1); \
             add users to the configuration file (--config) to listen elsewhere"
        )))
    }
}

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()>,
    options: ServerOptions,
) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listen address", e))?;
    check_listen(&local, options.security.users.is_some())?;
    let catalog = engine.catalog();
    catalog.resident().set_budget(options.resident_memory);
    // Temporary tables of sessions a stopped server never ended.
    for schema in catalog.snapshot().schemas.keys() {
        if schema.starts_with(crate::catalog::TEMP_SCHEMA_PREFIX) {
            catalog.drop_schema(schema, true, true).await?;
        }
    }
    let permits = Arc::new(Semaphore::new(options.max_connections));
    // Finds a connection by the pid and key a cancel request names.
    let running = Arc::new(ConnectionManager::new());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let handlers = Arc::new(handler::Handlers::new(
                            &engine,
                            &options.security,
                            &running,
                        ));
                        let tls = options.security.tls.clone();
                        let terminate = handlers.terminate();
                        connections.spawn(async move {
                            // pg_terminate_backend: dropping the connection
                            // closes the socket and stops its statement.
                            tokio::select! {
                                ended = pgwire::tokio::process_socket(socket, tls, handlers) => {
                                    if let Err(e) = ended {
                                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                                    }
                                }
                                () = terminate.notified() => {
                                    tracing::info!(%peer, "connection terminated by pg_terminate_backend");
                                }
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        connections.spawn(refuse(socket, options.max_connections));
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(options.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the drain period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Answers a connection over the limit with FATAL 53300 and closes it,
/// after reading its startup packet (declining TLS if asked) so the client
/// reads the error instead of a reset connection.
async fn refuse(mut socket: TcpStream, limit: usize) {
    use tokio::io::AsyncReadExt;
    const SSL_REQUEST: u32 = 80_877_103;
    let read_startup = async {
        loop {
            let len = socket.read_u32().await? as usize;
            let mut rest = vec![0u8; len.saturating_sub(4).min(10_000)];
            socket.read_exact(&mut rest).await?;
            let code = rest
                .get(..4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            if len == 8 && code == Some(SSL_REQUEST) {
                socket.write_all(b"N").await?;
                continue;
            }
            return Ok::<_, std::io::Error>(());
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), read_startup)
        .await
        .is_err()
    {
        return;
    }
    let message = format!("sorry, too many clients already (max_connections = {limit})");
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate::TOO_MANY_CONNECTIONS),
        (b'M', message.as_str()),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let _ = socket.write_all(&frame).await;
    let _ = socket.shutdown().await;
}
