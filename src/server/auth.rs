//! Who may connect: the users of the configuration file, each with a role
//! and a SCRAM-SHA-256 verifier, PostgreSQL's own format
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as in
//! `pg_authid.rolpassword`). The server never holds a password, or anything
//! a client could log in with: a verifier proves a password without
//! revealing it. `profiledb password` makes one ([`verifier`]).
//!
//! An unknown user goes through the same exchange with a random verifier,
//! so the answer (28P01, password authentication failed) does not tell
//! which users exist.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

use crate::config::{ConfigFile, Role};
use crate::error::{Error, Result};

/// Iterations of a new verifier (PostgreSQL's default).
const ITERATIONS: usize = 4096;

/// A parsed verifier.
#[derive(Clone)]
struct Verifier {
    iterations: usize,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (head, keys) = rest.split_once('$')?;
        let (iterations, salt) = head.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let decode = |s: &str| B64.decode(s).ok();
        let v = Self {
            iterations: iterations.parse().ok().filter(|&i| i > 0)?,
            salt: decode(salt).filter(|s| !s.is_empty())?,
            stored_key: decode(stored).filter(|k| k.len() == 32)?,
            server_key: decode(server).filter(|k| k.len() == 32)?,
        };
        Some(v)
    }

    fn of_password(password: &str, salt: Vec<u8>, iterations: usize) -> Self {
        let salted = gen_salted_password(password, &salt, iterations);
        match ScramSecret::verifier_from_salted_password(salt, salted, iterations) {
            ScramSecret::Verifier {
                salt,
                iterations,
                stored_key,
                server_key,
            } => Self {
                iterations,
                salt,
                stored_key,
                server_key,
            },
            ScramSecret::SaltedPassword { .. } => unreachable!("a verifier was asked for"),
        }
    }

    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// A SCRAM-SHA-256 verifier of `password`, with a random salt.
pub fn verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let v = Verifier::of_password(password, salt.to_vec(), ITERATIONS);
    format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        v.iterations,
        B64.encode(&v.salt),
        B64.encode(&v.stored_key),
        B64.encode(&v.server_key)
    )
}

/// Checks that `text` is a verifier (for the configuration's validation).
pub fn is_verifier(text: &str) -> bool {
    Verifier::parse(text).is_some()
}

#[derive(Debug, Clone)]
struct User {
    role: Role,
    verifier: Verifier,
}

/// The configured users.
#[derive(Debug, Clone)]
pub struct Users {
    users: HashMap<String, User>,
}

impl Users {
    /// None when the configuration has no users (trust on loopback).
    pub fn from_config(config: &ConfigFile) -> Result<Option<Self>> {
        if config.users.is_empty() {
            return Ok(None);
        }
        let mut users = HashMap::new();
        for u in &config.users {
            let verifier = Verifier::parse(&u.password).ok_or_else(|| {
                Error::Config(format!(
                    "user {}: password must be a SCRAM-SHA-256 verifier (make one with `profiledb password`)",
                    u.name
                ))
            })?;
            users.insert(
                u.name.clone(),
                User {
                    role: u.role,
                    verifier,
                },
            );
        }
        Ok(Some(Self { users }))
    }

    pub fn role(&self, user: &str) -> Option<Role> {
        self.users.get(user).map(|u| u.role)
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM is offered; there is no password to hand out.
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().ok_or(PgWireError::UserNameRequired)?;
        let secret = match self.users.get(user) {
            Some(u) => u.verifier.secret(),
            None => {
                let salt: [u8; 16] = rand::random();
                let noise: [u8; 32] = rand::random();
                Verifier::of_password(&B64.encode(noise), salt.to_vec(), ITERATIONS).secret()
            }
        };
        Ok((secret, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_round_trip_and_differ_by_salt() {
        let a = verifier("s3cret");
        let b = verifier("s3cret");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        let parsed = Verifier::parse(&a).unwrap();
        let again = Verifier::of_password("s3cret", parsed.salt.clone(), parsed.iterations);
        assert_eq!(again.stored_key, parsed.stored_key);
        assert_eq!(again.server_key, parsed.server_key);
        assert!(!is_verifier("s3cret"));
        assert!(!is_verifier("SCRAM-SHA-256$4096:c2FsdA==$eA==:eA=="));
    }
}
