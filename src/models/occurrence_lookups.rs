//! Lookups in the occurrence index shared by a run's builds. An index
//! join (see [`super::index_join`]) scans every hash of the occurrence
//! index to find the rows of its keys; two models of one run often look up
//! the same keys (the identifiers whose profile changed: `orders_unified`
//! for the orders they carry, `profile_traits` for the events). The rows
//! found are kept for the rest of the run, by table, hash, scanned files
//! and keys: occurrence files never change once published, so equal keys
//! find equal rows. At most [`MAX_ROWS`] rows are kept in all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;

use crate::udf::occurrence_index::Hash;

/// Rows kept for the run, in all.
pub const MAX_ROWS: usize = 2_000_000;

/// What a lookup is by: table, hash, scanned `(file, size)`s, and its key
/// hashes, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub table: String,
    pub hash: Hash,
    pub files: Vec<(String, u64)>,
    pub keys: Vec<u64>,
}

/// A lookup's outcome: the rows found, or None when they were too many to
/// read through the index.
pub type Found = Option<Arc<Vec<RecordBatch>>>;

#[derive(Debug, Default)]
pub struct OccurrenceLookups {
    found: Mutex<(HashMap<Lookup, Found>, usize)>,
}

impl OccurrenceLookups {
    /// The outcome of an earlier equal lookup.
    pub fn get(&self, lookup: &Lookup) -> Option<Found> {
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.0.get(lookup).cloned()
    }

    /// Keeps a lookup's outcome while the run's budget lasts.
    pub fn put(&self, lookup: Lookup, outcome: Found) {
        let rows = outcome
            .as_ref()
            .map_or(0, |b| b.iter().map(RecordBatch::num_rows).sum());
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if found.1 + rows <= MAX_ROWS {
            found.1 += rows;
            found.0.insert(lookup, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Int64Array};

    use super::*;

    fn lookup(keys: Vec<u64>) -> Lookup {
        Lookup {
            table: "identifiers".into(),
            hash: Hash::Identifier,
            files: vec![("data/a.parquet".into(), 10)],
            keys,
        }
    }

    fn rows(n: i64) -> Found {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        Some(Arc::new(vec![
            RecordBatch::try_from_iter([("n", column)]).unwrap(),
        ]))
    }

    #[test]
    fn equal_lookups_share_rows_within_the_budget() {
        let lookups = OccurrenceLookups::default();
        lookups.put(lookup(vec![1, 2]), rows(5));
        lookups.put(lookup(vec![3]), None);
        assert_eq!(
            lookups.get(&lookup(vec![1, 2])).unwrap().unwrap()[0].num_rows(),
            5
        );
        assert!(lookups.get(&lookup(vec![3])).unwrap().is_none());
        assert!(lookups.get(&lookup(vec![2])).is_none());
        // Past the budget, outcomes are not kept.
        lookups.put(lookup(vec![4]), rows(MAX_ROWS as i64));
        assert!(lookups.get(&lookup(vec![4])).is_none());
    }
}
