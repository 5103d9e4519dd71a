//! Graph algorithms behind the identity SQL functions.
//!
//! - [`union_find`]: disjoint sets over dense `u32` ids.
//! - [`junk`]: placeholder values that must never link people.
//! - [`resolve`]: occurrences of identifiers → profiles, with every rejected
//!   identifier or link reported with its reason and evidence.

pub mod junk;
pub mod resolve;
pub mod rules;
pub mod union_find;
