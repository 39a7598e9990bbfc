//! The `seq` numbers a station has sent inside the retained history, for duplicate
//! detection. Devices count up from some number, so a bitmap from the lowest retained
//! seq holds them in a bit each; a seq far outside it goes to a hash set.

use rustc_hash::FxHashSet;
use std::collections::VecDeque;

use crate::checkpoint::format2::Seqs;

/// Largest gap (in 64-seq words) the bitmap grows over before using the hash set.
const MAX_WORDS: usize = 1 << 16;

/// The bitmap's last word, where a device counting up sets its bits, is kept beside the
/// set rather than in the heap with the others: with a thousand stations interleaved,
/// fetching it was a cache miss for every station a batch of records reached.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct SeqSet {
    /// Seq of bit 0 of the first word; a multiple of 64.
    base: u64,
    /// The bitmap's last word (index `words.len()`), when `has_last()`.
    last: u64,
    /// The bitmap's words but the last.
    words: VecDeque<u64>,
    sparse: Sparse,
}

/// The seqs outside the bitmap, boxed: most stations never send one, and an empty set
/// inline took 32 bytes of every station's state.
#[derive(Debug, Clone, Default)]
struct Sparse(Option<Box<FxHashSet<u64>>>);

impl Sparse {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    fn contains(&self, seq: &u64) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(seq))
    }

    fn insert(&mut self, seq: u64) -> bool {
        self.0.get_or_insert_default().insert(seq)
    }

    fn remove(&mut self, seq: &u64) {
        if let Some(s) = &mut self.0 {
            s.remove(seq);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &u64> {
        self.0.iter().flat_map(|s| s.iter())
    }
}

impl FromIterator<u64> for Sparse {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let set: FxHashSet<u64> = iter.into_iter().collect();
        Sparse((!set.is_empty()).then(|| Box::new(set)))
    }
}

impl SeqSet {
    /// The set as a checkpoint keeps it: all the bitmap's words in one sequence.
    pub fn save(&self) -> Seqs {
        let last = self.has_last().then_some(self.last);
        let mut sparse: Vec<u64> = self.sparse.iter().copied().collect();
        sparse.sort_unstable();
        Seqs {
            base: self.base,
            words: self.words.iter().copied().chain(last).collect(),
            sparse,
        }
    }

    /// The set of a checkpoint.
    pub fn load(saved: Seqs) -> SeqSet {
        let mut words = VecDeque::from(saved.words);
        let last = words.pop_back();
        SeqSet {
            base: saved.base,
            words,
            last: last.unwrap_or(0),
            sparse: saved.sparse.into_iter().collect(),
        }
    }
}

impl SeqSet {
    /// Where the part an insert touches ends, `sparse` aside (`StationOp`'s layout test).
    #[cfg(test)]
    pub(crate) const INSERT_PART_END: usize =
        std::mem::offset_of!(SeqSet, words) + std::mem::size_of::<VecDeque<u64>>();

    /// Whether the bitmap has any word: a last word with a bit set, or words before it
    /// (a flag of its own took 8 bytes of every station's state). `words` is empty when
    /// not.
    fn has_last(&self) -> bool {
        self.last != 0 || !self.words.is_empty()
    }

    /// Words in the bitmap.
    fn len(&self) -> usize {
        self.words.len() + usize::from(self.has_last())
    }

    /// Adds `seq`; false when it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        if !self.has_last() && self.sparse.is_empty() {
            self.base = seq & !63;
        }
        if seq >= self.base {
            let word = ((seq - self.base) / 64) as usize;
            let bit = 1u64 << ((seq - self.base) % 64);
            let len = self.len();
            let fresh = if word + 1 == len {
                let fresh = self.last & bit == 0;
                self.last |= bit;
                fresh
            } else if word < len {
                let fresh = self.words[word] & bit == 0;
                self.words[word] |= bit;
                fresh
            } else if word < len + MAX_WORDS {
                if self.has_last() {
                    self.words.push_back(self.last);
                }
                self.words.resize(word, 0);
                self.last = bit;
                true
            } else {
                return self.sparse.insert(seq);
            };
            return fresh && (self.sparse.is_empty() || !self.sparse.contains(&seq));
        }
        self.sparse.insert(seq)
    }

    pub fn remove(&mut self, seq: u64) {
        let had_last = self.has_last();
        if seq >= self.base {
            let word = ((seq - self.base) / 64) as usize;
            let bit = 1u64 << ((seq - self.base) % 64);
            if let Some(w) = self.words.get_mut(word) {
                *w &= !bit;
            } else if had_last && word == self.words.len() {
                self.last &= !bit;
            }
        }
        self.sparse.remove(&seq);
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 64;
        }
        if had_last && !self.has_last() {
            // The last word of the seq range ends at u64::MAX: its end is not a seq.
            self.base = self.base.saturating_add(64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn a_checkpoint_keeps_every_word() {
        let mut s = SeqSet::default();
        for q in [3, 70, 200, 90_000_000] {
            s.insert(q);
        }
        let saved = s.save();
        assert_eq!(saved.words, [1 << 3, 1 << 6, 0, 1 << 8]);
        assert_eq!(saved.sparse, [90_000_000]);
        let mut restored = SeqSet::load(saved);
        for q in [3, 70, 200, 90_000_000] {
            assert!(!restored.insert(q), "{q} lost in the checkpoint");
        }
        assert!(restored.insert(201));
    }

    #[test]
    fn seqs_at_the_end_of_the_range() {
        let mut s = SeqSet::default();
        for q in [u64::MAX - 1, u64::MAX, u64::MAX - 64, 7] {
            assert!(s.insert(q), "{q}");
        }
        for q in [u64::MAX - 64, u64::MAX - 1, u64::MAX] {
            s.remove(q);
        }
        assert!(s.insert(u64::MAX));
        assert!(!s.insert(7));
        assert!(s.insert(u64::MAX - 1));
    }

    proptest! {
        /// Against a plain set: inserts answer whether the seq was new, removals forget.
        #[test]
        fn answers_as_a_set_does(ops in prop::collection::vec(
            (any::<bool>(), prop_oneof![0u64..400, 10_000_000u64..10_000_100, u64::MAX - 200..=u64::MAX]), 1..300)
        ) {
            let mut s = SeqSet::default();
            let mut model = std::collections::BTreeSet::new();
            for (add, q) in ops {
                if add {
                    prop_assert_eq!(s.insert(q), model.insert(q), "insert {}", q);
                } else {
                    s.remove(q);
                    model.remove(&q);
                }
            }
        }
    }
}
