//! Counters `pg_stat_user_tables` shows for this server's reads: index
//! scans (point lookups answered from a key index, see
//! `engine::lookup`) and the rows they fetched.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub idx_scan: i64,
    pub idx_tup_fetch: i64,
}

#[derive(Debug, Default)]
pub struct TableStats {
    counts: Mutex<HashMap<(String, String), Counts>>,
}

impl TableStats {
    pub fn index_scan(&self, schema: &str, table: &str, rows: usize) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts
            .entry((schema.to_owned(), table.to_owned()))
            .or_default();
        c.idx_scan += 1;
        c.idx_tup_fetch += rows as i64;
    }

    pub fn get(&self, schema: &str, table: &str) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(schema.to_owned(), table.to_owned()))
            .copied()
            .unwrap_or_default()
    }
}
