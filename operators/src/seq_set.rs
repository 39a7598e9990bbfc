//! The `seq` numbers a station has sent inside the retained history, for duplicate
//! detection. Devices count up from some number, so a bitmap from the lowest retained
//! seq holds them in a bit each; a seq far outside it goes to a hash set.

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Largest gap (in 64-seq words) the bitmap grows over before using the hash set.
const MAX_WORDS: usize = 1 << 16;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeqSet {
    /// Seq of bit 0 of `words[0]`; a multiple of 64.
    base: u64,
    words: VecDeque<u64>,
    sparse: FxHashSet<u64>,
}

impl SeqSet {
    /// Adds `seq`; false when it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.words.is_empty() && self.sparse.is_empty() {
            self.base = seq & !63;
        }
        if seq >= self.base {
            let word = ((seq - self.base) / 64) as usize;
            if word < self.words.len() + MAX_WORDS {
                if word >= self.words.len() {
                    self.words.resize(word + 1, 0);
                }
                let bit = 1u64 << ((seq - self.base) % 64);
                let fresh = self.words[word] & bit == 0;
                self.words[word] |= bit;
                return fresh && (self.sparse.is_empty() || !self.sparse.contains(&seq));
            }
        }
        self.sparse.insert(seq)
    }

    pub fn remove(&mut self, seq: u64) {
        if seq >= self.base {
            let word = ((seq - self.base) / 64) as usize;
            if let Some(w) = self.words.get_mut(word) {
                *w &= !(1u64 << ((seq - self.base) % 64));
            }
        }
        self.sparse.remove(&seq);
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_sparse_and_removed_seqs() {
        let mut s = SeqSet::default();
        assert!(s.insert(1000));
        assert!(s.insert(1001));
        assert!(!s.insert(1000));
        assert!(s.insert(5)); // below the bitmap
        assert!(!s.insert(5));
        assert!(s.insert(u64::MAX)); // far above it
        assert!(!s.insert(u64::MAX));
        s.remove(1000);
        assert!(s.insert(1000));
        for q in 1000..1200 {
            s.remove(q);
        }
        assert!(s.insert(1100));
        assert!(!s.insert(5));
    }
}
