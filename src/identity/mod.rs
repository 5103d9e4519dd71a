//! Graph algorithms behind the identity SQL functions.
//!
//! - [`graph`]: occurrences interned into dense identifier and row-group
//!   ids over the input's Arrow columns (via [`interner`]).
//! - [`resolve`]: the rules, applied in order over the graph → profiles,
//!   with every rejected identifier or link reported with its reason and
//!   evidence; [`limits`] checks per-profile limits as sets join.
//! - [`stable_ids`]: profile ids kept across runs, merges and splits.
//! - [`incremental`]: after new rows land, only the components they reach
//!   are resolved again.
//! - [`rules`]: the rules table; [`junk`]: values that never link people.
//! - [`union_find`]: disjoint sets over dense `u32` ids.
//! - [`hash_filter`]: hash sets with a bitmap in front, for scans that
//!   test millions of rows against a few thousand wanted hashes.

pub mod graph;
pub mod hash_filter;
pub mod incremental;
pub mod interner;
pub mod junk;
pub mod limits;
pub mod resolve;
pub mod rules;
pub mod stable_ids;
pub mod union_find;
