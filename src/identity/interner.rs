//! Dense `u32` ids for keys that live elsewhere (in Arrow string arrays).
//!
//! Each table entry is an id with 32 bits of its key's hash, so a lookup
//! compares hashes before touching key bytes (one cache miss fewer); the
//! full hashes are kept aside so growing the table never re-reads a key. Keys are compared by a caller-supplied closure, so
//! nothing is copied out of the input columns.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use hashbrown::HashTable;

#[derive(Default)]
pub struct Interner {
    /// `fingerprint << 32 | id`.
    table: HashTable<u64>,
    hashes: Vec<u64>,
}

impl Interner {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            table: HashTable::with_capacity(n),
            hashes: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The id of the key with `hash` for which `same(id)` holds; a new id
    /// (the next dense one) when there is none. Returns `(id, is_new)`.
    pub fn intern(&mut self, hash: u64, same: impl Fn(u32) -> bool) -> (u32, bool) {
        let hashes = &self.hashes;
        let next = hashes.len() as u32;
        let print = hash >> 32;
        let entry = self.table.entry(
            hash,
            |&e| e >> 32 == print && same(e as u32),
            |&e| hashes[(e as u32) as usize],
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => (*e.get() as u32, false),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((print << 32) | u64::from(next));
                self.hashes.push(hash);
                (next, true)
            }
        }
    }

    /// The id of an existing key, if any.
    pub fn find(&self, hash: u64, same: impl Fn(u32) -> bool) -> Option<u32> {
        let print = hash >> 32;
        self.table
            .find(hash, |&e| e >> 32 == print && same(e as u32))
            .map(|&e| e as u32)
    }
}

/// The hash of `bytes` under `tag` (an identifier type, a source), the
/// same in every process.
pub fn hash_key(tag: u32, bytes: &[u8]) -> u64 {
    let mut h = FixedState::with_seed(0x05ee_d1d5).build_hasher();
    h.write_u32(tag);
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_an_id_and_ids_are_dense() {
        let keys = ["a", "b", "a", "c", "b"];
        let mut interner = Interner::with_capacity(2);
        let mut first: Vec<&str> = Vec::new();
        let ids: Vec<u32> = keys
            .iter()
            .map(|k| {
                let (id, new) =
                    interner.intern(hash_key(0, k.as_bytes()), |id| first[id as usize] == *k);
                if new {
                    first.push(k);
                }
                id
            })
            .collect();
        assert_eq!(ids, [0, 1, 0, 2, 1]);
        assert_eq!(interner.len(), 3);
        assert_eq!(
            interner.find(hash_key(0, b"c"), |id| first[id as usize] == "c"),
            Some(2)
        );
        assert_eq!(interner.find(hash_key(1, b"c"), |_| true), None);
    }
}
