//! Segments: any view in schema `segments` is a segment, a set of
//! profiles. [`refresh`] snapshots and diffs their membership at the end of
//! every run of models, so who entered and who exited, and when, is
//! queryable in SQL.

pub mod refresh;
