//! The scheduler's clock. [`SystemClock`] is the wall clock; [`TestClock`]
//! stands still until a test moves it, so scheduler tests never sleep.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

#[async_trait]
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Waits until `until`, or less: the scheduler checks the time again
    /// whenever this returns, so returning early is allowed. `seen` is
    /// the time the caller last read.
    async fn sleep_until(&self, seen: DateTime<Utc>, until: DateTime<Utc>);
}

#[derive(Debug, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, _seen: DateTime<Utc>, t: DateTime<Utc>) {
        // At most a minute at a time, so a wall clock set forward is
        // noticed.
        let wait = (t - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait.min(std::time::Duration::from_secs(60))).await;
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct TestClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock forward; whoever waits on it wakes up.
    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|t| *t += by);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }
}

#[async_trait]
impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    /// Returns as soon as the clock is not at `seen` (it moved, maybe
    /// before this was called), or at once when `until` has come.
    async fn sleep_until(&self, seen: DateTime<Utc>, until: DateTime<Utc>) {
        let mut rx = self.now.subscribe();
        let now = *rx.borrow_and_update();
        if now != seen || now >= until {
            return;
        }
        let _ = rx.changed().await;
    }
}
