//! The integration test binary: everything here runs through the real
//! interfaces — the storage root on disk, the model runner, the wire server
//! on a random loopback port, tokio-postgres and the real `psql` binary.

#![allow(clippy::unwrap_used)]

mod activation;
mod analyses;
mod auth;
mod cli;
mod clients;
mod copy;
mod data_tests;
mod dbt;
mod ddl;
mod incremental;
mod interrupt;
mod introspection;
mod jobs;
mod lookup;
mod merge;
mod models;
mod segments;
mod server;
mod sources;
mod spine;
mod support;
