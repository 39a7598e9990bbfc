//! The byte format's pieces shared by the event log's blocks and packed states: LEB128
//! varints, zigzag for signed ones, and a writer into room sized beforehand.

/// Writes into room made beforehand for the worst case: a byte is a store and a check
/// against the room's end, where `Vec::push` also checks the capacity and keeps the
/// length in memory.
pub struct Writer<'a> {
    pub room: &'a mut [u8],
    pub at: usize,
}

impl Writer<'_> {
    pub fn byte(&mut self, b: u8) {
        self.room[self.at] = b;
        self.at += 1;
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    pub fn word(&mut self, word: [u8; 8]) {
        self.room[self.at..self.at + 8].copy_from_slice(&word);
        self.at += 8;
    }
}

/// Reads the varint at `at` (bytes this crate wrote) and moves past it.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Reads the eight bytes at `at` and moves past them.
pub fn get_word(bytes: &[u8], at: &mut usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[*at..*at + 8]);
    *at += 8;
    u64::from_le_bytes(word)
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
