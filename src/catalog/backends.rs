//! The server's connections as PostgreSQL shows them (`pg_stat_activity`),
//! and the signals `pg_cancel_backend` / `pg_terminate_backend` send them.
//!
//! The wire server registers each connection once it is authenticated and
//! marks each statement's start and end ([`Backend::begin`]); the entry
//! leaves the registry when the connection's [`Registration`] is dropped.
//! How a connection is cancelled or closed is the server's business, so it
//! hands over a [`Signals`] implementation; this module never sees a socket.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};

use crate::config::Role;

/// How the server stops a connection's statement or the connection.
pub trait Signals: Send + Sync {
    /// Cancels the running statement, as a cancel request does.
    fn cancel(&self);
    /// Closes the connection (its running statement stops with it).
    fn terminate(&self);
}

/// What a backend is doing, as `pg_stat_activity.state` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Active,
    IdleInTransaction,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Active => "active",
            State::IdleInTransaction => "idle in transaction",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Activity {
    /// As the session last set it (`SET application_name`).
    pub application_name: String,
    pub state: State,
    /// The last statement text received (the running one when active).
    pub query: String,
    pub query_start: Option<DateTime<Utc>>,
    pub xact_start: Option<DateTime<Utc>>,
    pub state_change: DateTime<Utc>,
    /// Counts statements, so an older statement ending late leaves a newer
    /// one active.
    statements: u64,
}

/// One connection.
pub struct Backend {
    pub pid: i32,
    pub user: String,
    pub role: Role,
    pub client_addr: Option<std::net::SocketAddr>,
    pub backend_start: DateTime<Utc>,
    activity: Mutex<Activity>,
    signals: Box<dyn Signals>,
}

impl Backend {
    pub fn activity(&self) -> Activity {
        self.activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks a statement `query` as running; the backend is idle again
    /// when the last clone of the returned mark is dropped (after the
    /// statement's rows are sent).
    pub fn begin(self: &Arc<Self>, query: &str, in_transaction: bool) -> Arc<Busy> {
        let now = Utc::now();
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        if a.xact_start.is_none() || !in_transaction {
            a.xact_start = Some(now);
        }
        a.state = State::Active;
        a.query = query.to_owned();
        a.query_start = Some(now);
        a.state_change = now;
        a.statements += 1;
        Arc::new(Busy {
            statement: a.statements,
            backend: Arc::clone(self),
            in_transaction: Mutex::new(in_transaction),
        })
    }
}

/// A statement in progress (see [`Backend::begin`]).
pub struct Busy {
    statement: u64,
    backend: Arc<Backend>,
    in_transaction: Mutex<bool>,
}

impl Busy {
    /// What the statement left: whether the session is inside a
    /// transaction block (`idle` or `idle in transaction` once it ends),
    /// and its `application_name`.
    pub fn executed(&self, in_transaction: bool, application_name: Option<String>) {
        *self
            .in_transaction
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = in_transaction;
        if let Some(name) = application_name {
            self.backend
                .activity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .application_name = name;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let open = *self
            .in_transaction
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut a = self
            .backend
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if a.statements != self.statement {
            return;
        }
        a.state = if open {
            State::IdleInTransaction
        } else {
            a.xact_start = None;
            State::Idle
        };
        a.state_change = Utc::now();
    }
}

/// The connection's place in the registry; dropping it removes the entry.
pub struct Registration {
    backend: Arc<Backend>,
    registry: Weak<Mutex<BTreeMap<i32, Arc<Backend>>>>,
}

impl Registration {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(map) = self.registry.upgrade() {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.backend.pid);
        }
    }
}

/// Why a signal was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No connection has that pid (PostgreSQL warns and returns false).
    NotABackend,
    /// An analyst may signal only their own user's connections.
    NotPermitted,
}

#[derive(Default)]
pub struct Backends {
    map: Arc<Mutex<BTreeMap<i32, Arc<Backend>>>>,
}

/// What a connection says about itself when it registers.
pub struct NewBackend {
    pub pid: i32,
    pub user: String,
    pub role: Role,
    pub application_name: String,
    pub client_addr: Option<std::net::SocketAddr>,
    pub signals: Box<dyn Signals>,
}

impl Backends {
    pub fn register(&self, new: NewBackend) -> Registration {
        let now = Utc::now();
        let backend = Arc::new(Backend {
            pid: new.pid,
            user: new.user,
            role: new.role,
            client_addr: new.client_addr,
            backend_start: now,
            activity: Mutex::new(Activity {
                application_name: new.application_name,
                state: State::Idle,
                query: String::new(),
                query_start: None,
                xact_start: None,
                state_change: now,
                statements: 0,
            }),
            signals: new.signals,
        });
        self.lock().insert(new.pid, Arc::clone(&backend));
        Registration {
            backend,
            registry: Arc::downgrade(&self.map),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Arc<Backend>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered connections, by pid.
    pub fn list(&self) -> Vec<Arc<Backend>> {
        self.lock().values().cloned().collect()
    }

    pub fn get(&self, pid: i32) -> Option<Arc<Backend>> {
        self.lock().get(&pid).cloned()
    }

    /// Cancels `pid`'s statement (`terminate`: closes the connection) on
    /// behalf of the connection `caller`. As in PostgreSQL, an admin may
    /// signal any connection and others only their own user's; a caller
    /// that is no connection (the CLI) acts as the owner.
    pub fn signal(&self, pid: i32, caller: i32, terminate: bool) -> Result<(), Refused> {
        let target = self.get(pid).ok_or(Refused::NotABackend)?;
        if let Some(caller) = self.get(caller)
            && caller.role != Role::Admin
            && caller.user != target.user
        {
            return Err(Refused::NotPermitted);
        }
        if terminate {
            target.signals.terminate();
        } else {
            target.signals.cancel();
        }
        Ok(())
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backends({})", self.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counted(Arc<(AtomicUsize, AtomicUsize)>);
    impl Signals for Counted {
        fn cancel(&self) {
            self.0.0.fetch_add(1, Ordering::SeqCst);
        }
        fn terminate(&self) {
            self.0.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn backend(
        b: &Backends,
        pid: i32,
        user: &str,
        role: Role,
    ) -> (Registration, Arc<(AtomicUsize, AtomicUsize)>) {
        let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let r = b.register(NewBackend {
            pid,
            user: user.into(),
            role,
            application_name: String::new(),
            client_addr: None,
            signals: Box::new(Counted(Arc::clone(&counts))),
        });
        (r, counts)
    }

    #[test]
    fn signals_follow_roles_and_registration_ends_with_the_connection() {
        let b = Backends::default();
        let (admin, _) = backend(&b, 1, "ops", Role::Admin);
        let (ann, ann_counts) = backend(&b, 2, "ann", Role::Analyst);
        let (_bob, bob_counts) = backend(&b, 3, "bob", Role::Analyst);
        assert_eq!(b.signal(3, 2, false), Err(Refused::NotPermitted));
        assert_eq!(b.signal(2, 2, false), Ok(()));
        assert_eq!(b.signal(3, 1, true), Ok(()));
        assert_eq!(b.signal(9, 1, true), Err(Refused::NotABackend));
        assert_eq!(ann_counts.0.load(Ordering::SeqCst), 1);
        assert_eq!(bob_counts.1.load(Ordering::SeqCst), 1);
        drop(ann);
        assert_eq!(b.list().iter().map(|x| x.pid).collect::<Vec<_>>(), [1, 3]);
        drop(admin);
    }

    #[test]
    fn a_statement_is_active_until_its_mark_is_dropped() {
        let b = Backends::default();
        let (r, _) = backend(&b, 1, "ops", Role::Admin);
        let busy = r.backend().begin("select 1", false);
        let rows = Arc::clone(&busy);
        assert_eq!(r.backend().activity().state, State::Active);
        drop(busy);
        assert_eq!(r.backend().activity().state, State::Active);
        rows.executed(true, Some("app".into()));
        drop(rows);
        let a = r.backend().activity();
        assert_eq!(
            (a.state, a.query.as_str(), a.application_name.as_str()),
            (State::IdleInTransaction, "select 1", "app")
        );
        assert!(a.xact_start.is_some());
    }
}
