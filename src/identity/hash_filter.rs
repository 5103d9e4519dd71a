//! A set of `u64` hashes with a bitmap in front, for the scans that ask
//! "is this row's hash wanted?" of every row of the graph or of the
//! occurrence index (millions of rows) while a few thousand hashes are
//! wanted. Most answers come from one bit of a bitmap that stays in cache
//! (32 bits a member, so about 3% of unwanted hashes get past it); only
//! those that pass look in the set.

use std::collections::HashSet;

use foldhash::fast::FixedState;

/// Bitmap bits per member, at least.
const BITS_PER_MEMBER: usize = 32;

/// The smallest bitmap: 2^16 bits (8 KiB).
const MIN_BITS_LOG2: u32 = 16;

#[derive(Clone)]
pub struct HashFilter {
    /// Bit [`Self::bit`]`(h)` is set for every member `h`.
    bits: Vec<u64>,
    shift: u32,
    set: HashSet<u64, FixedState>,
}

impl Default for HashFilter {
    fn default() -> Self {
        Self::with_bits_log2(MIN_BITS_LOG2)
    }
}

impl HashFilter {
    fn with_bits_log2(log2: u32) -> Self {
        Self {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 64 - log2,
            set: HashSet::default(),
        }
    }

    /// The bit of hash `h`: its top bits after a multiply, since the
    /// hashes (FNV-1a) mix their low bits least.
    #[inline]
    fn bit(&self, h: u64) -> usize {
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline]
    pub fn contains(&self, h: u64) -> bool {
        let b = self.bit(h);
        self.bits[b >> 6] & (1 << (b & 63)) != 0 && self.set.contains(&h)
    }

    /// Adds `h`; true when it was not a member.
    pub fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        if self.set.len() * BITS_PER_MEMBER > self.bits.len() * 64 {
            let log2 = 64 - self.shift + 1;
            let members = std::mem::take(&mut self.set);
            *self = Self::with_bits_log2(log2);
            for m in &members {
                self.mark(*m);
            }
            self.set = members;
        } else {
            self.mark(h);
        }
        true
    }

    fn mark(&mut self, h: u64) {
        let b = self.bit(h);
        self.bits[b >> 6] |= 1 << (b & 63);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.set.iter().copied()
    }
}

impl Extend<u64> for HashFilter {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, hashes: I) {
        for h in hashes {
            self.insert(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_as_it_grows_and_others_are_not() {
        let mut filter = HashFilter::default();
        let members: Vec<u64> = (0..50_000u64).map(|i| i * 7919).collect();
        for &m in &members {
            assert!(filter.insert(m));
        }
        assert!(!filter.insert(members[3]));
        assert_eq!(filter.len(), members.len());
        assert!(filter.bits.len() * 64 >= members.len() * BITS_PER_MEMBER);
        assert!(members.iter().all(|&m| filter.contains(m)));
        let others = (0..200_000u64).map(|i| i * 7919 + 1);
        assert_eq!(others.filter(|&h| filter.contains(h)).count(), 0);
    }
}
