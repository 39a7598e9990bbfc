//! Event time: milliseconds since the Unix epoch, UTC. Parsing of RFC 3339 stamps and
//! the helpers that align instants to one-minute windows.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds in one station window.
pub const MINUTE_MS: i64 = 60_000;

/// Parses an RFC 3339 timestamp with an offset into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The start of the UTC minute that contains `ts_ms`.
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
}
