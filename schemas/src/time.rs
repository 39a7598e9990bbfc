//! Event time: milliseconds since the Unix epoch, UTC. Parsing of RFC 3339 stamps and
//! the helpers that align instants to one-minute windows.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds in one station window.
pub const MINUTE_MS: i64 = 60_000;

/// Event times lie closer to the epoch than this (year 10000 after it): beyond it,
/// RFC 3339 cannot write them and minute arithmetic is not exact.
pub const TS_LIMIT_MS: u64 = 253_402_300_800_000;

/// Parses an RFC 3339 timestamp with an offset into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    plain_rfc3339_ms(text.as_bytes()).or_else(|| {
        let text = text.trim();
        plain_rfc3339_ms(text.as_bytes()).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis())
        })
    })
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` without chrono's general
/// parser; `None` for anything else (chrono then decides). Agrees with chrono wherever
/// it answers (tested below). Every byte of `b` is checked when it answers, so a caller
/// may hand it bytes not yet known to be text.
pub fn plain_rfc3339_ms(b: &[u8]) -> Option<i64> {
    if let Some(ms) = b.try_into().ok().and_then(utc_millis_stamp_ms) {
        return Some(ms);
    }
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    if head[13] != b':' || head[16] != b':' {
        return None;
    }
    let two = |at: usize| decimal(&b[at..at + 2]);
    let hour = head.first_chunk()?;
    let hour_start = hour_s(hour_words(hour), hour)?;
    let (minute, second) = (two(14)?, two(17)?);
    if minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let mut digits = 0;
        while let Some(d) = b.get(at + 1 + digits).and_then(|&c| digit(c)) {
            if digits < 3 {
                millis = millis * 10 + d;
            }
            digits += 1;
        }
        if digits == 0 || digits > 9 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
        at += 1 + digits;
    }
    let offset_s = match (b.get(at), b.len() - at) {
        (Some(b'Z'), 1) => 0,
        (Some(&sign @ (b'+' | b'-')), 6) if b[at + 3] == b':' => {
            let (h, m) = (two(at + 1)?, two(at + 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) * if sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    let seconds = hour_start + minute * 60 + second;
    Some((seconds - offset_s) * 1000 + millis)
}

/// `YYYY-MM-DDTHH:MM:SS.fffZ`, the stamp nearly every device sends, checked and read as
/// three words; `None` for anything else. The hour is looked up in `LAST_HOUR` by its
/// bytes as two words, and checked and computed only when it changed.
pub(crate) fn utc_millis_stamp_ms(b: &[u8; 24]) -> Option<i64> {
    // The date's bytes are checked by `epoch_hour_s` when the hour is not the last one.
    const TIME: Shape = Shape::of(b"00T00:00");
    const REST: Shape = Shape::of(b":00.000Z");
    let word = |i: usize| u64::from_le_bytes(*b[8 * i..].first_chunk().unwrap_or(&[0; 8]));
    let (date, time, rest) = (word(0), word(1), word(2));
    if !TIME.fits(time) || !REST.fits(rest) {
        return None;
    }
    let hour_start = hour_s((date, time & HOUR_TAIL), b.first_chunk()?)?;
    let d = |at: usize| i64::from(b[at] - b'0');
    let (minute, second) = (d(14) * 10 + d(15), d(17) * 10 + d(18));
    if minute > 59 || second > 59 {
        return None;
    }
    let millis = d(20) * 100 + d(21) * 10 + d(22);
    Some((hour_start + minute * 60 + second) * 1000 + millis)
}

/// Eight bytes of a stamp's shape: a digit wherever the pattern has `0`, its own byte
/// elsewhere.
struct Shape {
    bytes: u64,
    digits: u64,
}

impl Shape {
    const ONES: u64 = 0x0101_0101_0101_0101;

    const fn of(pattern: &[u8; 8]) -> Shape {
        let mut digits = 0;
        let mut i = 0;
        while i < 8 {
            if pattern[i] == b'0' {
                digits |= 0xff << (8 * i);
            }
            i += 1;
        }
        Shape {
            bytes: u64::from_le_bytes(*pattern),
            digits,
        }
    }

    fn fits(&self, word: u64) -> bool {
        (word ^ self.bytes) & !self.digits == 0 && non_digit_bytes(word) & self.digits == 0
    }
}

/// `word` with a bit set in each byte that is not an ASCII digit, and none in a digit
/// below the first that is not. A digit's high nibble is 3 before and after adding 6; a
/// byte that carries into the next is no digit itself, so only bytes above a non-digit
/// can be flagged wrongly.
pub(crate) fn non_digit_bytes(word: u64) -> u64 {
    let (high, three) = (Shape::ONES * 0xf0, Shape::ONES * 0x30);
    ((word & high) ^ three) | ((word.wrapping_add(Shape::ONES * 6) & high) ^ three)
}

/// Bytes 8 to 12 of a stamp (`DDTHH`), the rest of its hour after the first word.
const HOUR_TAIL: u64 = 0xff_ffff_ffff;

thread_local! {
    /// The last hour parsed, `YYYY-MM-DDTHH` as its first word and `HOUR_TAIL` of the
    /// second, and its seconds since the epoch (before any offset): a stream's stamps
    /// share their hour. It starts as a real hour, so that no text matches unchecked.
    static LAST_HOUR: std::cell::Cell<((u64, u64), i64)> = const {
        let tail = [b'0', b'1', b'T', b'0', b'0', 0, 0, 0];
        let epoch = (u64::from_le_bytes(*b"1970-01-"), u64::from_le_bytes(tail));
        std::cell::Cell::new((epoch, 0))
    };
}

/// `text` (`YYYY-MM-DDTHH`) as `LAST_HOUR` keys it.
fn hour_words(text: &[u8; 13]) -> (u64, u64) {
    let mut words = [0; 16];
    words[..13].copy_from_slice(text);
    let word = |at: usize| u64::from_le_bytes(*words[at..].first_chunk().unwrap_or(&[0; 8]));
    (word(0), word(8))
}

/// `epoch_hour_s` of `text`, whose words (`hour_words`) are `hour`, through `LAST_HOUR`.
/// Inlined: on the usual stamp's path a call cost as much as the lookup.
#[inline(always)]
fn hour_s(hour: (u64, u64), text: &[u8; 13]) -> Option<i64> {
    match LAST_HOUR.get() {
        (last, seconds) if last == hour => Some(seconds),
        _ => {
            let seconds = epoch_hour_s(text)?;
            LAST_HOUR.set((hour, seconds));
            Some(seconds)
        }
    }
}

/// Seconds since the epoch of a valid `YYYY-MM-DDTHH`, read as UTC.
fn epoch_hour_s(text: &[u8; 13]) -> Option<i64> {
    if text[4] != b'-' || text[7] != b'-' || text[10] != b'T' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| decimal(&text[range]);
    let (year, month, day, hour) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600)
}

/// The value of one ASCII digit.
fn digit(byte: u8) -> Option<i64> {
    let d = byte.wrapping_sub(b'0');
    (d < 10).then_some(i64::from(d))
}

/// The value of a run of ASCII digits; `None` if any byte is not one.
fn decimal(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0, |n, &d| Some(n * 10 + digit(d)?))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The start of the UTC minute that contains `ts_ms`.
#[inline]
pub fn minute_floor(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_ms(ts_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ts_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ts_ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_floors_minutes() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:01:00Z"), Some(60_000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:01:00+01:00"), Some(60_000));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(minute_floor(119_999), 60_000);
        assert_eq!(minute_floor(-1), -60_000);
        assert_eq!(format_ms(60_250), "1970-01-01T00:01:00.250Z");
    }

    fn chrono_ms(text: &str) -> Option<i64> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    #[test]
    fn plain_shape_agrees_with_chrono() {
        let samples = [
            "2026-03-02T06:00:01.250Z",
            "2026-03-02T06:00:01Z",
            "2026-03-02T06:00:01.2Z",
            "2026-03-02T06:00:01.123456789Z",
            "2024-02-29T23:59:59.999+05:30",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.5+00:00",
        ];
        for text in samples {
            assert_eq!(plain_rfc3339_ms(text.as_bytes()), chrono_ms(text), "{text}");
            assert!(plain_rfc3339_ms(text.as_bytes()).is_some(), "{text}");
        }
        let declined = [
            "2023-02-29T00:00:00Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T06:00:60Z",
            "2026-03-02 06:00:00Z",
            "2026-03-02T06:00:00.Z",
            "2026-03-02T06:00:00+0100",
            "2026-03-02T06:00:00",
            "2026-13-02T06:00:00Z",
        ];
        for text in declined {
            assert_eq!(plain_rfc3339_ms(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn stamps_sharing_an_hour_agree_with_chrono() {
        let texts = [
            "2026-03-02T06:00:01.250Z",
            "2026-03-02T06:59:59.999Z",
            "2026-03-02T06:60:00Z",
            "2026-03-02T06:30:00+01:00",
            "2026-03-02T07:00:00Z",
            "2026-03-02T06:00:00-05:30",
            "2023-02-29T06:00:00Z",
            "2026-03-02T06:00:00.5Z",
        ];
        for _ in 0..2 {
            for text in texts {
                assert_eq!(parse_rfc3339_ms(text), chrono_ms(text), "{text}");
            }
        }
    }

    #[test]
    fn the_hour_cache_starts_with_a_checked_hour() {
        // A thread's first stamp: no text of zero bytes may pass for a cached hour.
        let first = std::thread::spawn(|| {
            let zeros = plain_rfc3339_ms(b"\0\0\0\0\0\0\0\0\0\0\0\0\0:00:00Z");
            let epoch = plain_rfc3339_ms(b"1970-01-01T00:00:01Z");
            (zeros, epoch)
        });
        assert_eq!(first.join().unwrap(), (None, Some(1_000)));
        let fresh = std::thread::spawn(|| LAST_HOUR.get().0).join().unwrap();
        assert_eq!(fresh, hour_words(b"1970-01-01T00"));
    }

    #[test]
    fn the_usual_stamp_checks_every_byte() {
        let good = *b"2026-03-02T06:07:08.009Z";
        assert_eq!(
            utc_millis_stamp_ms(&good),
            chrono_ms("2026-03-02T06:07:08.009Z")
        );
        for at in 0..good.len() {
            for byte in [
                b'0', b'9', b'/', b':', b'-', b'T', b'.', b'Z', b' ', 0xff, 0xfa,
            ] {
                let mut text = good;
                text[at] = byte;
                let ms = utc_millis_stamp_ms(&text);
                let shown = String::from_utf8_lossy(&text).into_owned();
                if ms.is_some() {
                    assert_eq!(ms, chrono_ms(&shown), "{shown}");
                }
                let general = std::str::from_utf8(&text).ok().and_then(chrono_ms);
                if let Some(ms) = plain_rfc3339_ms(&text) {
                    assert_eq!(Some(ms), general, "{shown}");
                }
                if let Ok(text) = std::str::from_utf8(&text) {
                    assert_eq!(parse_rfc3339_ms(text), general, "{shown}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_shape_never_disagrees(
            y in 0i64..10_000, mo in 0i64..14, d in 0i64..33, h in 0i64..25, mi in 0i64..61,
            s in 0i64..61, frac in proptest::option::of("[0-9]{0,10}"),
            zone in "Z|[+-][0-2][0-9]:[0-6][0-9]|z|[+-]0[0-9]",
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}");
            if let Some(ms) = plain_rfc3339_ms(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(ms), chrono_ms(&text), "{}", text);
            }
            proptest::prop_assert_eq!(parse_rfc3339_ms(&text), chrono_ms(&text), "{}", text);
        }
    }
}
