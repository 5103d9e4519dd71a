//! profiledb: a SQL-native customer data platform engine.
//!
//! Raw customer data lands as Parquet under a storage root; SQL models
//! resolve identities into profiles and materialise tables; a PostgreSQL
//! wire server lets any Postgres client query them.
//!
//! Data and module dependencies flow one way:
//!
//! ```text
//! cli ─┬─> server ──> engine ──> {models, udf, catalog} ──> storage
//!      └─> generate                  udf ──> identity
//! ```
//!
//! | module | job |
//! |---|---|
//! | [`cli`] | command line → library calls; errors → exit code, printed once |
//! | [`config`] | command line + environment → validated settings |
//! | [`error`] | the one error type |
//! | [`storage`] | the storage root (object_store), layout, atomic table publish |
//! | [`catalog`] | sources, tables, views, `pg_catalog`, stable OIDs |
//! | [`identity`] | union-find and the identity resolution rules |
//! | [`udf`] | SQL functions, one per file |
//! | [`engine`] | the only place a DataFusion session is assembled; per-client sessions |
//! | [`models`] | `sql/` model files, their DAG, building them |
//! | [`generate`] | synthetic multi-source data with ground truth |
//! | [`server`] | the PostgreSQL wire protocol (the only user of pgwire) |

pub mod catalog;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod generate;
pub mod identity;
pub mod jobs;
pub mod models;
pub mod segments;
pub mod server;
pub mod storage;
pub mod udf;
