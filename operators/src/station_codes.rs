//! Station code → station id, the lookup every record makes. Codes are short; kept
//! inline in the table (no pointer to follow, three words to compare), so the lookup
//! stays in cache with a thousand stations interleaved. Longer codes use a plain map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashTable;

use crate::plan::StationId;

/// A code of up to 23 bytes, zero-padded, its length in the last byte.
#[derive(Clone, Copy)]
struct ShortCode([u64; 3]);

impl ShortCode {
    /// Built from word loads, not through a byte buffer on the stack: reading words back
    /// from bytes just stored one by one stalls the CPU (no store-to-load forwarding).
    fn new(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() > 23 {
            return None;
        }
        let length = (bytes.len() as u64) << 56;
        Some(ShortCode([
            word_at(bytes, 0),
            word_at(bytes, 8),
            word_at(bytes, 16) | length,
        ]))
    }

    /// The words' own hash (see `CodeHasher`), computed where they are, in registers.
    fn hash(&self) -> u64 {
        let mut hasher = CodeHasher::default();
        self.0.iter().for_each(|w| hasher.write_u64(*w));
        hasher.finish()
    }

    /// Word by word: the derived comparison goes through memory.
    fn same(&self, other: &ShortCode) -> bool {
        self.0[0] == other.0[0] && self.0[1] == other.0[1] && self.0[2] == other.0[2]
    }
}

/// The eight bytes of `bytes` from `at` as a little-endian word, zero-padded past the end.
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let load = |from: usize| {
        bytes
            .get(from..from + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    };
    let len = bytes.len();
    if at + 8 <= len {
        return load(at);
    }
    if at >= len {
        return 0;
    }
    let tail = len - at; // 1 to 7 bytes
    if len >= 8 {
        // The last eight bytes, shifted down to the `tail` that belongs to this word.
        return load(len - 8) >> (8 * (8 - tail));
    }
    bytes[at..]
        .iter()
        .rev()
        .fold(0, |word, &b| (word << 8) | u64::from(b))
}

/// Multiplies to 128 bits and folds: every input bit reaches every output bit.
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Hashes codes so that every output bit depends on every input bit. FxHash does not:
/// codes that differ only in their last characters (`ST-00001`, `ST-00002`: the words'
/// high bytes) got the same control bits, so every lookup compared every entry.
#[derive(Default)]
struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = fold_multiply(self.0 ^ word, 0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Short codes in a table probed with the code's words as they are (a map would want
/// the key as one value in memory, stored and read back per lookup); long codes in a map.
#[derive(Default)]
pub struct StationCodes {
    short: HashTable<(ShortCode, StationId)>,
    long: HashMap<Box<str>, StationId, BuildHasherDefault<CodeHasher>>,
}

impl StationCodes {
    pub fn insert(&mut self, code: &str, id: StationId) {
        let Some(short) = ShortCode::new(code) else {
            self.long.insert(code.into(), id);
            return;
        };
        let hash = short.hash();
        match self.short.find_mut(hash, |(c, _)| c.same(&short)) {
            Some(entry) => entry.1 = id,
            None => {
                self.short
                    .insert_unique(hash, (short, id), |(c, _)| c.hash());
            }
        }
    }

    pub fn get(&self, code: &str) -> Option<StationId> {
        match ShortCode::new(code) {
            Some(short) => self
                .short
                .find(short.hash(), |(c, _)| c.same(&short))
                .map(|(_, id)| *id),
            None => self.long.get(code).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hashbrown keeps the top seven bits of a hash as the control tag it compares first.
    fn distinct_tags(hashes: impl Iterator<Item = u64>) -> usize {
        let tags: std::collections::HashSet<u64> = hashes.map(|h| h >> 57).collect();
        tags.len()
    }

    #[test]
    fn codes_that_differ_in_their_last_characters_spread_over_the_tags() {
        let short = (0..1000).filter_map(|i| ShortCode::new(&format!("ST-{i:05}")));
        assert!(distinct_tags(short.map(|c| c.hash())) > 120);
        let build = BuildHasherDefault::<CodeHasher>::default();
        let long = (0..1000).map(|i| format!("LEEDS-ASSEMBLY-LINE-3-PRESS-{i:05}"));
        let long = long.map(|c| std::hash::BuildHasher::hash_one(&build, c.as_str()));
        assert!(distinct_tags(long) > 120);
    }

    #[test]
    fn words_are_the_zero_padded_bytes_with_the_length_last() {
        let text: Vec<u8> = (1..=23).collect();
        for len in 0..=23 {
            let mut buf = [0u8; 24];
            buf[..len].copy_from_slice(&text[..len]);
            buf[23] = len as u8;
            let word = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().unwrap());
            let code = std::str::from_utf8(&text[..len]).unwrap();
            let short = ShortCode::new(code).unwrap();
            assert_eq!(short.0, [word(0), word(8), word(16)], "length {len}");
        }
    }

    #[test]
    fn finds_short_and_long_codes_and_nothing_else() {
        let mut codes = StationCodes::default();
        let long = "A-STATION-CODE-LONGER-THAN-23";
        for (id, code) in ["CNC-01", "", "CNC-010", "exactly-23-bytes-long-x", long]
            .iter()
            .enumerate()
        {
            codes.insert(code, id as StationId);
        }
        assert_eq!(codes.get("CNC-01"), Some(0));
        assert_eq!(codes.get(""), Some(1));
        assert_eq!(codes.get("CNC-010"), Some(2));
        assert_eq!(codes.get("exactly-23-bytes-long-x"), Some(3));
        assert_eq!(codes.get(long), Some(4));
        for absent in [
            "CNC-0",
            "CNC-01\0",
            "cnc-01",
            "exactly-23-bytes-long-y",
            &long[1..],
        ] {
            assert_eq!(codes.get(absent), None, "{absent:?}");
        }
    }
}
