//! The fast path for what DAUs actually send: one flat JSON object of ASCII keys and
//! plain values (strings without escapes, numbers, booleans, null). Anything else —
//! escapes, non-ASCII text, nesting, numbers out of range, any syntax error — returns
//! `None` and goes through serde_json, which decides it. For every payload both accept,
//! both give the same `RawRecord` (property-tested in `tests::flat_agrees_with_serde`).

use std::borrow::Cow;

use super::{RawRecord, RawValue};

/// Scans `bytes` into `rec` (which starts empty); `None` when serde_json must decide.
pub(super) fn scan<'a>(bytes: &'a [u8], rec: &mut RawRecord<'a>) -> Option<()> {
    let mut s = Scanner { bytes, at: 0 };
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.at += 1;
    } else {
        loop {
            s.skip_ws();
            let key = s.string()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            let value = s.value()?;
            rec.put(key, value);
            s.skip_ws();
            match s.bump()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == bytes.len()).then_some(())
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.bump()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string of printable ASCII without escapes.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let len = plain_len(&self.bytes[start..]);
        if self.bytes.get(start + len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        let text = &self.bytes[start..start + len];
        // SAFETY: `plain_len` checked every byte of `text` to be printable ASCII.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }

    fn value(&mut self) -> Option<RawValue<'a>> {
        Some(match self.peek()? {
            b'"' => RawValue::Text(Cow::Borrowed(self.string()?)),
            b't' => self.literal(b"true").map(|_| RawValue::Bool(true))?,
            b'f' => self.literal(b"false").map(|_| RawValue::Bool(false))?,
            b'n' => self.literal(b"null").map(|_| RawValue::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        })
    }

    /// A JSON number: integers of up to 18 digits exactly, others as the nearest `f64`.
    fn number(&mut self) -> Option<RawValue<'a>> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = self.digits();
        let leading_zero = int_digits > 1 && self.bytes[int_start] == b'0';
        if int_digits == 0 || leading_zero {
            return None;
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            integral = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            integral = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        if integral && int_digits <= 18 {
            if negative && int_digits == 1 && self.bytes[int_start] == b'0' {
                return Some(RawValue::Number(-0.0)); // as serde_json reads `-0`
            }
            let magnitude = self.bytes[int_start..self.at]
                .iter()
                .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
            let value = if negative { -magnitude } else { magnitude };
            return Some(RawValue::Integer(i128::from(value)));
        }
        if integral {
            return None;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        let value: f64 = text.parse().ok()?;
        value.is_finite().then_some(RawValue::Number(value))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that might not be plain string text: a quote, a
/// backslash, a control byte, DEL or non-ASCII. A byte can be flagged wrongly only above
/// one flagged rightly, so the lowest flag is always right.
fn special_bytes(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    (word & HIGH_BITS)
        | below_space
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | zero(word ^ (ONES * 0x7f))
}

/// Length of the leading run of printable ASCII other than `"` and `\\`: sixteen bytes at
/// a time where the CPU has SSE2, then eight at a time (the last chunk zero-padded: zero
/// is a control byte and ends the run).
fn plain_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..at + 16) {
        let special = special_bytes_16(chunk.try_into().unwrap_or(&[0; 16]));
        if special != 0 {
            return at + special.trailing_zeros() as usize;
        }
        at += 16;
    }
    loop {
        let word = match bytes.get(at..at + 8) {
            Some(chunk) => u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])),
            None => {
                let mut chunk = [0u8; 8];
                let rest = &bytes[at..];
                chunk[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(chunk)
            }
        };
        let special = special_bytes(word);
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
}

/// One bit per byte of `chunk` that is not plain string text (see `special_bytes`).
#[cfg(target_arch = "x86_64")]
fn special_bytes_16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 CPU; the load is unaligned and reads exactly
    // the sixteen bytes of `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // Signed: non-ASCII bytes (0x80 and up) are negative, so below 0x20 as well.
        let control_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
        let any = _mm_or_si128(
            _mm_or_si128(control_or_high, quote),
            _mm_or_si128(backslash, del),
        );
        _mm_movemask_epi8(any) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_len_stops_at_the_first_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
            for at in 0..40 {
                let mut bytes = vec![b'a'; 44];
                bytes[at] = special;
                assert_eq!(plain_len(&bytes), at, "byte {special:#x} at {at}");
            }
        }
        assert_eq!(plain_len(b"ST-00001"), 8);
        assert_eq!(plain_len(b" ~~~~~~~~~~~~~~~"), 16);
        assert_eq!(plain_len(b""), 0);
    }
}
