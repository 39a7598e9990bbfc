//! The fast path for what DAUs actually send: one flat JSON object of ASCII keys and
//! plain values (strings without escapes, numbers, booleans, null), each key once, every
//! value valid. It decodes straight into the caller's `SignalRecord`. Anything else —
//! escapes, non-ASCII text, nesting, numbers out of range, a repeated key, a value the
//! record would be rejected for, any syntax error — returns `None`, and the general path
//! (serde_json, then the same checks) decides it. For every payload the fast path
//! accepts, both give the same record (property-tested in `tests::flat_agrees_with_serde`).

use super::{outside_code, trim, Reading, SignalKey, SignalRecord};
use crate::time::TS_LIMIT_MS;
use crate::time::{non_digit_bytes, parse_rfc3339_ms, utc_millis_stamp_ms};

/// Decodes `bytes` into `out`; `None` when the general path must decide. `station` and
/// `fallback_ts_ms` are as for `decode_json`.
pub(super) fn decode(
    bytes: &[u8],
    station: Option<&str>,
    fallback_ts_ms: Option<i64>,
    out: &mut SignalRecord,
) -> Option<()> {
    if decode_usual(bytes, out).is_some() {
        return Some(());
    }
    let mut s = Scanner { bytes, at: 0 };
    let mut seen = Seen::default();
    let mut ts = None;
    out.seq = None;
    out.readings.clear();
    out.unknown_keys = 0;
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.at += 1;
    } else {
        loop {
            s.skip_ws();
            let field = s.field()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            match field {
                Field::Station => {
                    seen.first(0)?;
                    let code = trim(s.string()?);
                    (!code.is_empty()).then_some(())?;
                    out.station.clear();
                    out.station.push_str(code);
                }
                Field::Ts => {
                    seen.first(1)?;
                    ts = Some(s.ts()?);
                }
                Field::Seq => {
                    seen.first(2)?;
                    out.seq = s.seq()?;
                }
                Field::Signal(key) => {
                    seen.first(3 + key as u32)?;
                    let reading = s.reading(key)?;
                    out.readings.push(reading);
                }
                Field::Unknown => {
                    s.skip_value()?;
                    out.unknown_keys += 1;
                }
            }
            s.skip_ws();
            match s.bump()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == bytes.len()).then_some(())?;
    if !seen.has(0) {
        let code = outside_code(station)?;
        out.station.clear();
        out.station.push_str(code);
    }
    out.ts = ts.or(fallback_ts_ms)?;
    Some(())
}

/// The layout DAUs and `generate` write, matched as fixed words in one pass:
/// `{"station":"…","ts":"YYYY-MM-DDTHH:MM:SS.fffZ","seq":N` then one or more signals and
/// `}`, with no whitespace. Any difference returns `None` and `decode`'s general loop
/// reads the line (every value is checked the same way in both).
fn decode_usual(bytes: &[u8], out: &mut SignalRecord) -> Option<()> {
    (usual_prefix(bytes, out)? == bytes.len()).then_some(())
}

/// `decode_usual` of the object at the start of `bytes`, and its length: what follows
/// it is not read.
pub(super) fn usual_prefix(bytes: &[u8], out: &mut SignalRecord) -> Option<usize> {
    let mut s = Scanner { bytes, at: 0 };
    s.word(b"{\"station\":\"")?;
    let code = trim(s.string_body()?);
    (!code.is_empty()).then_some(())?;
    s.word(b",\"ts\":")?;
    let ts = s.ts()?;
    s.word(b",\"seq\":")?;
    let seq = match s.plain_unsigned() {
        Some(n) => Some(n as u64),
        None => s.seq()?,
    };
    // Readings overwrite the last record's in place and the rest are cut off after:
    // clearing first would run the readings' drop glue (an error code owns its text)
    // element by element, about 40 instructions a record.
    let mut n = 0;
    let mut seen = Seen::default();
    while s.bump()? == b',' {
        s.expect(b'"')?;
        let key = match usual_signal_key(&bytes[s.at..]) {
            Some((key, len)) => {
                s.at += len;
                key
            }
            None => {
                let key = SignalKey::from_key(s.string_body()?)?;
                s.expect(b':')?;
                key
            }
        };
        seen.first(key as u32)?;
        let plain = match key {
            SignalKey::ErrorCode => None,
            _ => s.plain_unsigned(),
        };
        let reading = match plain {
            Some(v) => key.number(v as f64)?,
            None => s.reading(key)?,
        };
        match out.readings.get_mut(n) {
            Some(slot) => *slot = reading,
            None => out.readings.push(reading),
        }
        n += 1;
    }
    if out.readings.len() > n {
        out.readings.truncate(n);
    }
    (bytes[s.at - 1] == b'}').then_some(())?;
    out.station.clear();
    out.station.push_str(code);
    out.ts = ts;
    out.seq = seq;
    out.unknown_keys = 0;
    Some(s.at)
}

/// A signal's key as the usual layout writes it, with its closing quote and the colon,
/// compared as fixed words (no scan for the quote): the key and the bytes it takes.
fn usual_signal_key(rest: &[u8]) -> Option<(SignalKey, usize)> {
    use SignalKey::*;
    macro_rules! first_of {
        ($($text:literal => $key:expr),+) => {{
            $(if rest.starts_with($text) {
                return Some(($key, $text.len()));
            })+
            None
        }};
    }
    match rest.first()? {
        b'p' => first_of!(
            b"production_complete_good\":" => GoodDelta,
            b"production_count_good\":" => GoodTotal,
            b"production_complete_bad\":" => BadDelta,
            b"production_count_bad\":" => BadTotal,
            b"productive\":" => Productive,
            b"production_complete\":" => GoodDelta,
            b"production_count\":" => GoodTotal
        ),
        b'e' => first_of!(
            b"error_code\":" => ErrorCode,
            b"electrical_kwh\":" => KwhTotal,
            b"electrical_kwh_interval\":" => KwhDelta
        ),
        b'l' => first_of!(b"line_speed\":" => LineSpeed),
        b'r' => first_of!(b"rssi\":" => Rssi),
        _ => None,
    }
}

/// What a key names.
enum Field {
    Station,
    Ts,
    Seq,
    Signal(SignalKey),
    Unknown,
}

impl Field {
    fn of(key: &str) -> Field {
        match key {
            "station" => Field::Station,
            "ts" => Field::Ts,
            "seq" => Field::Seq,
            other => SignalKey::from_key(other).map_or(Field::Unknown, Field::Signal),
        }
    }
}

/// The fields met so far, one bit each: a repeated one (or an alias of one met) goes to
/// the general path, which keeps the last.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, bit: u32) -> Option<()> {
        let fresh = !self.has(bit);
        self.0 |= 1 << bit;
        fresh.then_some(())
    }

    fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

/// A JSON number as serde_json reads it: integers exactly, the rest as `f64`.
enum Number {
    Integer(i64),
    Float(f64),
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

    /// A fixed run of bytes, compared as one array (a few word compares, no `memcmp`).
    fn word<const N: usize>(&mut self, word: &[u8; N]) -> Option<()> {
        let here: &[u8; N] = self.bytes.get(self.at..self.at + N)?.try_into().ok()?;
        (here == word).then(|| self.at += N)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A key, as the field it names. The three keys every record carries are matched as
    /// one word with their closing quote, without a scan.
    fn field(&mut self) -> Option<Field> {
        const STATION: u64 = u64::from_le_bytes(*b"station\"");
        const TS: u64 = u64::from_le_bytes(*b"ts\"\0\0\0\0\0");
        const SEQ: u64 = u64::from_le_bytes(*b"seq\"\0\0\0\0");
        let word = self
            .bytes
            .get(self.at + 1..self.at + 9)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        if self.peek() == Some(b'"') {
            let (field, len) = match word {
                Some(STATION) => (Field::Station, 8),
                Some(w) if w & 0xff_ffff == TS => (Field::Ts, 3),
                Some(w) if w & 0xffff_ffff == SEQ => (Field::Seq, 4),
                _ => return Some(Field::of(self.string()?)),
            };
            self.at += 1 + len;
            return Some(field);
        }
        None
    }

    /// A string of printable ASCII without escapes.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// The rest of a string whose opening quote is read, and its closing quote.
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.at;
        let len = plain_len(self.bytes, start);
        if self.bytes.get(start + len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        let text = &self.bytes[start..start + len];
        // SAFETY: `plain_len` checked every byte of `text` to be printable ASCII.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }

    /// A signal's value as its reading, built here (not through the general path's
    /// `RawValue` and `Result`); `None` when invalid.
    fn reading(&mut self, key: SignalKey) -> Option<Reading> {
        match (self.peek()?, key) {
            (b'-' | b'0'..=b'9', SignalKey::ErrorCode) => match self.number()? {
                Number::Integer(code) => Some(Reading::ErrorCode(Some(code.to_string().into()))),
                Number::Float(_) => None,
            },
            (b'-' | b'0'..=b'9', _) => match self.number()? {
                Number::Integer(n) => key.number(n as f64),
                Number::Float(f) => key.number(f),
            },
            (b't', SignalKey::Productive) => {
                self.literal(b"true").map(|_| Reading::Productive(true))
            }
            (b'f', SignalKey::Productive) => {
                self.literal(b"false").map(|_| Reading::Productive(false))
            }
            (b'n', SignalKey::ErrorCode) => self.literal(b"null").map(|_| Reading::ErrorCode(None)),
            (b'"', SignalKey::ErrorCode) => Some(Reading::error_code(self.string()?)),
            _ => None,
        }
    }

    /// Steps over a value of a key this version does not know.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }

    /// `ts`: an RFC 3339 string or integer epoch milliseconds in range.
    fn ts(&mut self) -> Option<i64> {
        if self.peek()? == b'"' {
            // The usual stamp, `"YYYY-MM-DDTHH:MM:SS.fffZ"`, is parsed where it lies: the
            // parser checks every byte, so the string scan is not needed first.
            if let Some(quoted) = self.bytes.get(self.at..self.at + 26) {
                let stamp = quoted[1..25].first_chunk().and_then(utc_millis_stamp_ms);
                if let (Some(ms), b'"') = (stamp, quoted[25]) {
                    self.at += 26;
                    return Some(ms);
                }
            }
            return parse_rfc3339_ms(self.string()?);
        }
        match self.number()? {
            Number::Integer(n) if n.unsigned_abs() < TS_LIMIT_MS => Some(n),
            _ => None,
        }
    }

    /// `seq`: a non-negative integer, or null for none.
    fn seq(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            return self.literal(b"null").map(|_| None);
        }
        match self.number()? {
            Number::Integer(n) => u64::try_from(n).ok().map(Some),
            Number::Float(_) => None,
        }
    }

    /// A non-negative integer of 1 to 18 digits, without a leading zero, fraction or
    /// exponent, as `number` reads it; `None` (and nothing read) for anything else.
    fn plain_unsigned(&mut self) -> Option<i64> {
        if let Some(word) = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk) {
            let word = u64::from_le_bytes(*word);
            let len = leading_digits(word);
            // Eight digits may go on: those take the loop below.
            if len < 8 {
                let next = (word >> (8 * len)) as u8;
                let plain = len > 0
                    && (len == 1 || word as u8 != b'0')
                    && !matches!(next, b'.' | b'e' | b'E');
                if !plain {
                    return None;
                }
                self.at += len as usize;
                return Some(digits_value(word, len));
            }
        }
        let start = self.at;
        let n = self.integer_digits();
        let len = self.at - start;
        let plain = (1..=18).contains(&len)
            && (len == 1 || self.bytes[start] != b'0')
            && !matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        if !plain {
            self.at = start;
            return None;
        }
        Some(n)
    }

    /// A JSON number: integers of up to 18 digits exactly, others as the nearest `f64`.
    fn number(&mut self) -> Option<Number> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        let magnitude = self.integer_digits();
        let int_digits = self.at - int_start;
        let leading_zero = int_digits > 1 && self.bytes[int_start] == b'0';
        if int_digits == 0 || leading_zero {
            return None;
        }
        if !matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            if int_digits > 18 {
                return None;
            }
            if negative && magnitude == 0 {
                return Some(Number::Float(-0.0)); // as serde_json reads `-0`
            }
            return Some(Number::Integer(if negative {
                -magnitude
            } else {
                magnitude
            }));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        let value: f64 = text.parse().ok()?;
        value.is_finite().then_some(Number::Float(value))
    }

    /// The value of the run of digits here (wrapping past 18 digits: callers check the
    /// length).
    fn integer_digits(&mut self) -> i64 {
        let mut n = 0i64;
        while let Some(d) = self.peek().and_then(digit) {
            n = n.wrapping_mul(10).wrapping_add(d);
            self.at += 1;
        }
        n
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().and_then(digit).is_some() {
            self.at += 1;
        }
        self.at - start
    }
}

fn digit(byte: u8) -> Option<i64> {
    let d = byte.wrapping_sub(b'0');
    (d < 10).then_some(i64::from(d))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// How many of `word`'s bytes, lowest first, are ASCII digits before one that is not
/// (8 when all are).
fn leading_digits(word: u64) -> u32 {
    let other = non_digit_bytes(word);
    let nonzero = (other | (other & !HIGH_BITS).wrapping_add(!HIGH_BITS)) & HIGH_BITS;
    nonzero.trailing_zeros() / 8
}

/// The value of the first `len` (1 to 8) bytes of `word`, all ASCII digits: they are
/// moved to the top (zeros before them) and paired up three times.
fn digits_value(word: u64, len: u32) -> i64 {
    let v = (word << (8 * (8 - len))) & (ONES * 0x0f);
    let v = v.wrapping_mul(10 << 8 | 1) >> 8 & 0x00ff_00ff_00ff_00ff;
    let v = v.wrapping_mul(100 << 16 | 1) >> 16 & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000 << 32 | 1) >> 32) as i64
}

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

/// Length of the run of printable ASCII other than `"` and `\\` that starts at `start`:
/// sixteen bytes at a time where the CPU has SSE2 (the last sixteen of `bytes` for a rest
/// shorter than that), else eight at a time (the last chunk zero-padded: zero is a
/// control byte and ends the run).
fn plain_len(bytes: &[u8], start: usize) -> usize {
    let mut at = start;
    #[cfg(target_arch = "x86_64")]
    {
        while let Some(chunk) = bytes.get(at..at + 16) {
            let special = special_bytes_16(chunk.try_into().unwrap_or(&[0; 16]));
            if special != 0 {
                return at - start + special.trailing_zeros() as usize;
            }
            at += 16;
        }
        if let Some(base) = bytes.len().checked_sub(16) {
            let last = bytes[base..].try_into().unwrap_or(&[0; 16]);
            let special = special_bytes_16(last) >> (at - base);
            return match special {
                0 => bytes.len() - start,
                _ => at - start + special.trailing_zeros() as usize,
            };
        }
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
            return at - start + (special.trailing_zeros() / 8) as usize;
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
    fn a_reused_record_holds_only_the_last_lines_readings() {
        let mut out = SignalRecord::default();
        let lines = [
            (
                r#"{"station":"A","ts":0,"seq":1,"error_code":"E7","productive":0,"rssi":-60}"#,
                3,
            ),
            (
                r#"{"station":"A","ts":1,"seq":2,"production_complete_good":1}"#,
                1,
            ),
            (
                r#"{"station":"A","ts":2,"seq":3,"productive":1,"error_code":null}"#,
                2,
            ),
            (r#"{"station":"A","ts":3,"seq":4}"#, 0),
        ];
        for (line, count) in lines {
            assert_eq!(decode_usual(line.as_bytes(), &mut out), Some(()), "{line}");
            let fresh = crate::signal::decode_json(line.as_bytes(), None, None).unwrap();
            assert_eq!(out.readings.len(), count, "{line}");
            assert_eq!(out, fresh, "{line}");
        }
    }

    #[test]
    fn the_usual_layout_is_read_in_one_pass() {
        let mut out = SignalRecord::default();
        for line in [
            r#"{"station":"ST-00001","ts":"2026-03-02T06:00:00.919Z","seq":1,"production_count_good":1}"#,
            r#"{"station":"CNC-01","ts":"2026-03-01T21:00:00.000Z","seq":2,"productive":1,"error_code":""}"#,
            r#"{"station":"P1","ts":60000,"seq":null}"#,
        ] {
            assert_eq!(decode_usual(line.as_bytes(), &mut out), Some(()), "{line}");
        }
        assert_eq!(out.station, "P1");
        assert_eq!((out.ts, out.seq, out.readings.len()), (60_000, None, 0));
        // A padded code is trimmed here as on the general path.
        let padded = r#"{"station":" P2 ","ts":0,"seq":2}"#;
        assert_eq!(decode_usual(padded.as_bytes(), &mut out), Some(()));
        assert_eq!(out.station, "P2");
        for other in [
            r#"{"ts":"2026-03-01T21:00:00.000Z","station":"P1","seq":2}"#,
            r#"{"station":"P1", "ts":0,"seq":2}"#,
            r#"{"station":"P1","ts":0,"seq":2,"productive":1,"productive":0}"#,
            r#"{"station":"P1","ts":0,"seq":2,"fw":"1"}"#,
            r#"{"station":"P1","ts":0,"seq":2} "#,
            r#"{"station":"P1","ts":0,"seq":2"#,
        ] {
            assert_eq!(decode_usual(other.as_bytes(), &mut out), None, "{other}");
        }
    }

    #[test]
    fn plain_integers_read_a_word_at_a_time_as_digit_by_digit() {
        let expected = |bytes: &[u8]| -> Option<(i64, usize)> {
            let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let plain = (1..=18).contains(&len)
                && (len == 1 || bytes[0] != b'0')
                && !matches!(bytes.get(len), Some(b'.' | b'e' | b'E'));
            let value = std::str::from_utf8(&bytes[..len])
                .ok()?
                .parse::<i64>()
                .ok()?;
            plain.then_some((value, len))
        };
        let numbers = [
            "0",
            "7",
            "10",
            "09",
            "1234567",
            "12345678",
            "99999999",
            "123456789",
            "123456789012345678",
            "1234567890123456789",
            "1.5",
            "2e3",
            "3E3",
            "",
            "x",
            "-1",
            "4:",
            "5/",
            "6\u{ff}",
            "00",
        ];
        for number in numbers {
            for tail in ["", "}", ",\"good\":1}\n", "        ", "\u{fa}\u{fa}"] {
                let bytes = format!("{number}{tail}").into_bytes();
                let mut s = Scanner {
                    bytes: &bytes,
                    at: 0,
                };
                let got = s.plain_unsigned().map(|n| (n, s.at));
                assert_eq!(got, expected(&bytes), "{number:?}{tail:?}");
                if got.is_none() {
                    assert_eq!(s.at, 0, "{number:?}{tail:?}");
                }
            }
        }
    }

    #[test]
    fn usual_signal_keys_need_the_whole_key_its_quote_and_colon() {
        let key = |text: &str| usual_signal_key(text.as_bytes());
        assert_eq!(
            key("production_complete_good\":1}"),
            Some((SignalKey::GoodDelta, 26))
        );
        assert_eq!(
            key("production_complete\":1}"),
            Some((SignalKey::GoodDelta, 21))
        );
        assert_eq!(
            key("production_count\":1}"),
            Some((SignalKey::GoodTotal, 18))
        );
        assert_eq!(
            key("electrical_kwh_interval\":1"),
            Some((SignalKey::KwhDelta, 25))
        );
        assert_eq!(key("rssi\":-50"), Some((SignalKey::Rssi, 6)));
        for other in [
            "production_complete_goods\":1",
            "production_complete_good\" :1",
            "production_complete_good",
            "rssi\"",
            "Rssi\":1",
            "",
        ] {
            assert_eq!(key(other), None, "{other}");
        }
    }

    #[test]
    fn plain_len_stops_at_the_first_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
            for at in 0..40 {
                let mut bytes = vec![b'a'; 44];
                bytes[at] = special;
                for start in 0..=at {
                    assert_eq!(plain_len(&bytes, start), at - start, "{special:#x} at {at}");
                    let short = &bytes[..at + 1];
                    assert_eq!(plain_len(short, start), at - start, "{special:#x} at {at}");
                    let plain = &bytes[..at];
                    assert_eq!(plain_len(plain, start), at - start, "{at} plain bytes");
                }
            }
        }
        assert_eq!(plain_len(b"ST-00001", 0), 8);
        assert_eq!(plain_len(b" ~~~~~~~~~~~~~~~", 0), 16);
        assert_eq!(plain_len(b"", 0), 0);
    }
}
