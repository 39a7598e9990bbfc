//! Station code → station id, the lookup every record makes. Codes are short; kept
//! inline in the table (no pointer to follow, three words to compare), so the lookup
//! stays in cache with a thousand stations interleaved. Longer codes use a plain map.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

use crate::plan::StationId;

/// A code of up to 23 bytes, zero-padded, its length in the last byte.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShortCode([u64; 3]);

impl ShortCode {
    fn new(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() > 23 {
            return None;
        }
        let mut buf = [0u8; 24];
        buf[..bytes.len()].copy_from_slice(bytes);
        buf[23] = bytes.len() as u8;
        let word = |i: usize| {
            u64::from_le_bytes([
                buf[i],
                buf[i + 1],
                buf[i + 2],
                buf[i + 3],
                buf[i + 4],
                buf[i + 5],
                buf[i + 6],
                buf[i + 7],
            ])
        };
        Some(ShortCode([word(0), word(8), word(16)]))
    }
}

/// Multiplies to 128 bits and folds: every input bit reaches every output bit.
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hash for ShortCode {
    /// Mixed here, not by the map's hasher: FxHash of the raw words leaves codes that
    /// differ only in their last characters (`ST-00001`, `ST-00002`: the words' high
    /// bytes) with the same control bits, so every lookup compared every entry.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c] = self.0;
        let mixed = fold_multiply(a ^ 0x243f_6a88_85a3_08d3, b ^ 0x1319_8a2e_0370_7344)
            ^ fold_multiply(c ^ 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89);
        state.write_u64(mixed);
    }
}

#[derive(Default)]
pub struct StationCodes {
    short: FxHashMap<ShortCode, StationId>,
    long: FxHashMap<Box<str>, StationId>,
}

impl StationCodes {
    pub fn insert(&mut self, code: &str, id: StationId) {
        match ShortCode::new(code) {
            Some(short) => self.short.insert(short, id),
            None => self.long.insert(code.into(), id),
        };
    }

    pub fn get(&self, code: &str) -> Option<StationId> {
        match ShortCode::new(code) {
            Some(short) => self.short.get(&short).copied(),
            None => self.long.get(code).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
