//! Signal records (SPEC §2): the Busroot-style JSON payload a DAU publishes, decoded
//! into a typed `SignalRecord` or a rejection with its dead-letter reason. Decoding
//! walks the JSON once with borrowed keys; it never panics on input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::context::MAX_CODE_LEN;
use crate::dead_letter::RejectReason;
use crate::time::{parse_rfc3339_ms, TS_LIMIT_MS};

mod flat;

/// One signal value carried by a record. Counts are `f64`: quantities may be kilograms
/// or metres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reading {
    /// `productive`: engaged in production (holds until the next value).
    Productive(bool),
    /// `error_code`: `Some(code)` puts the station in fault; `None` clears it.
    ErrorCode(Option<Box<str>>),
    /// `production_complete_good`: good units made since the last record.
    GoodDelta(f64),
    /// `production_count_good`: running total of good units.
    GoodTotal(f64),
    /// `production_complete_bad`: rejects made since the last record.
    BadDelta(f64),
    /// `production_count_bad`: running total of rejects.
    BadTotal(f64),
    /// `line_speed`: units per minute, continuous lines.
    LineSpeed(f64),
    /// `electrical_kwh`: cumulative meter reading.
    KwhTotal(f64),
    /// `electrical_kwh_interval`: kWh since the last record.
    KwhDelta(f64),
    /// `rssi`: device signal strength, diagnostic only.
    Rssi(f64),
}

/// A decoded signal record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Station code: the `station` field, else the caller's (Kafka key, MQTT topic).
    pub station: String,
    /// Event time, epoch milliseconds UTC.
    pub ts: i64,
    /// Per-station strictly increasing sequence number, when the device sends one.
    pub seq: Option<u64>,
    pub readings: SmallVec<[Reading; 3]>,
    /// Keys this version does not know; ignored and counted.
    pub unknown_keys: u32,
}

/// The largest record (a line of a file, a Kafka message) read, in bytes: Kafka's default
/// for a whole message. A larger one is `too_large`, and its dead letter keeps its start.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The longest error code a record may carry, in bytes: codes are kept for the allowed
/// lateness and written into checkpoints.
pub const MAX_ERROR_CODE_LEN: usize = 256;

impl SignalRecord {
    /// Checks the lengths every input format shares: the station code and error codes.
    pub fn check_limits(&self) -> Result<(), Rejection> {
        // No longer than any code the context may define.
        if self.station.len() > MAX_CODE_LEN {
            return Err(Rejection::new(
                RejectReason::BadValue,
                format!(
                    "station code of {} bytes is longer than {MAX_CODE_LEN}",
                    self.station.len()
                ),
            ));
        }
        for reading in &self.readings {
            if let Reading::ErrorCode(Some(code)) = reading {
                if code.len() > MAX_ERROR_CODE_LEN {
                    return Err(Rejection::new(
                        RejectReason::BadValue,
                        format!(
                            "error_code of {} bytes is longer than {MAX_ERROR_CODE_LEN}",
                            code.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The record as a §2 JSON payload (canonical key names, `ts` in RFC 3339 UTC with
    /// milliseconds): what `publish` sends for records read from long CSV or Parquet.
    pub fn to_payload_json(&self) -> String {
        use serde_json::Value;
        // Written by hand to keep the readings' order (it orders equal-time records).
        let mut fields: Vec<(&str, Value)> = vec![
            ("station", self.station.clone().into()),
            ("ts", crate::time::format_ms(self.ts).into()),
        ];
        if let Some(seq) = self.seq {
            fields.push(("seq", seq.into()));
        }
        fields.extend(self.readings.iter().map(Reading::key_and_value));
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

impl Reading {
    /// An `error_code` given as text: blank clears the fault.
    fn error_code(text: &str) -> Reading {
        let code = text.trim();
        Reading::ErrorCode((!code.is_empty()).then(|| code.into()))
    }

    /// The canonical payload key of this reading.
    pub fn key(&self) -> &'static str {
        let key = match self {
            Reading::Productive(_) => SignalKey::Productive,
            Reading::ErrorCode(_) => SignalKey::ErrorCode,
            Reading::GoodDelta(_) => SignalKey::GoodDelta,
            Reading::GoodTotal(_) => SignalKey::GoodTotal,
            Reading::BadDelta(_) => SignalKey::BadDelta,
            Reading::BadTotal(_) => SignalKey::BadTotal,
            Reading::LineSpeed(_) => SignalKey::LineSpeed,
            Reading::KwhTotal(_) => SignalKey::KwhTotal,
            Reading::KwhDelta(_) => SignalKey::KwhDelta,
            Reading::Rssi(_) => SignalKey::Rssi,
        };
        key.name()
    }

    /// The number a reading carries (a count, meter, speed or `rssi`); `None` for
    /// `productive` and `error_code`.
    pub fn quantity(&self) -> Option<f64> {
        match self {
            Reading::Productive(_) | Reading::ErrorCode(_) => None,
            Reading::GoodDelta(v)
            | Reading::GoodTotal(v)
            | Reading::BadDelta(v)
            | Reading::BadTotal(v)
            | Reading::LineSpeed(v)
            | Reading::KwhTotal(v)
            | Reading::KwhDelta(v)
            | Reading::Rssi(v) => Some(*v),
        }
    }

    /// The canonical payload key of this reading and its JSON value.
    pub fn key_and_value(&self) -> (&'static str, serde_json::Value) {
        use serde_json::Value;
        let value = match self {
            Reading::Productive(b) => Value::Bool(*b),
            Reading::ErrorCode(code) => code
                .as_deref()
                .map_or(Value::Null, |c| Value::String(c.into())),
            number => number
                .quantity()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
        };
        (self.key(), value)
    }
}

/// Why a payload could not be decoded, with a human-readable detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

pub type DecodeOutcome = Result<SignalRecord, Rejection>;

/// Decodes one JSON payload. `station` is the code from outside the payload (Kafka key,
/// MQTT topic); a `"station"` field wins. `fallback_ts_ms` is the Kafka record timestamp
/// in live mode; files pass `None` and must carry `ts`.
pub fn decode_json(
    bytes: &[u8],
    station: Option<&str>,
    fallback_ts_ms: Option<i64>,
) -> DecodeOutcome {
    let mut record = SignalRecord::default();
    decode_json_into(bytes, station, fallback_ts_ms, &mut record)?;
    Ok(record)
}

/// `decode_json` into a record the caller reuses (its buffers are kept). On a rejection
/// the record's contents are unspecified.
pub fn decode_json_into(
    bytes: &[u8],
    station: Option<&str>,
    fallback_ts_ms: Option<i64>,
    out: &mut SignalRecord,
) -> Result<(), Rejection> {
    // Windows tools start UTF-8 text with a byte-order mark.
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if flat::decode(bytes, station, fallback_ts_ms, out).is_none() {
        let raw: RawRecord = serde_json::from_slice(bytes).map_err(json_rejection)?;
        raw.fill(station, fallback_ts_ms, out)?;
    }
    out.check_limits()
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why serde_json refused a payload. A number beyond `f64` (`1e400`) is a bad value, not
/// bad JSON; serde_json gives no error kind for it, only its message.
fn json_rejection(e: serde_json::Error) -> Rejection {
    let message = e.to_string();
    let reason = if message.starts_with("number out of range") {
        RejectReason::BadValue
    } else {
        RejectReason::MalformedJson
    };
    Rejection::new(reason, message)
}

/// The record at the start of `bytes` when it is one line in the layout devices usually
/// send (see `flat`), ended by `\n`: its length without the `\n`, and `out` as
/// `decode_json_into` would make it from those bytes. `None` when the line is anything
/// else (or not whole in `bytes`); find the line and use `decode_json_into` then.
pub fn decode_usual_json_line(bytes: &[u8], out: &mut SignalRecord) -> Option<usize> {
    let len = flat::usual_prefix(bytes, out)?;
    out.check_limits().ok()?;
    (bytes.get(len) == Some(&b'\n')).then_some(len)
}

/// One row of the long format (`station,ts,signal,value`, CSV or Parquet): the reading it
/// carries under the same rules as JSON, or `Ok(None)` for a signal key this version
/// does not know (ignored and counted).
pub fn reading_from_text(signal: &str, value: &str) -> Result<Option<Reading>, Rejection> {
    let Some(key) = SignalKey::from_key(signal.trim()) else {
        return Ok(None);
    };
    let text = value.trim();
    let raw = match key {
        SignalKey::ErrorCode => RawValue::Text(Cow::Borrowed(text)),
        _ if text.eq_ignore_ascii_case("true") => RawValue::Bool(true),
        _ if text.eq_ignore_ascii_case("false") => RawValue::Bool(false),
        _ => match text.parse::<i64>() {
            Ok(i) => RawValue::Integer(i as i128),
            Err(_) => match text.parse::<f64>() {
                Ok(f) => RawValue::Number(f),
                Err(_) => RawValue::Text(Cow::Borrowed(text)),
            },
        },
    };
    key.reading(&raw).map(Some)
}

/// A long-format `ts`: RFC 3339 with an offset, or integer epoch milliseconds.
pub fn ts_from_text(text: &str) -> Result<i64, Rejection> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::new(RejectReason::MissingTs, "the row has no ts"));
    }
    if let Ok(ms) = text.parse::<i64>() {
        if ms.unsigned_abs() >= TS_LIMIT_MS {
            return Err(Rejection::new(
                RejectReason::BadTs,
                format!("ts {ms} is out of range"),
            ));
        }
        return Ok(ms);
    }
    parse_rfc3339_ms(text).ok_or_else(|| {
        Rejection::new(
            RejectReason::BadTs,
            format!("ts {text:?} is neither RFC 3339 nor epoch milliseconds"),
        )
    })
}

/// The largest magnitude a reading may have. A counter that glitches to 1e308 would make
/// every sum over it infinite and every ratio NaN; 1e15 units (or kWh) is beyond any
/// real station and still exact in `f64`, and sums of such values stay finite.
pub const MAX_QUANTITY: f64 = 1e15;

/// A JSON value as the decoder needs to see it, borrowed where possible.
enum RawValue<'a> {
    Number(f64),
    Integer(i128),
    Text(Cow<'a, str>),
    Bool(bool),
    Null,
    Nested,
}

impl RawValue<'_> {
    fn describe(&self) -> String {
        match self {
            RawValue::Number(n) => n.to_string(),
            RawValue::Integer(n) => n.to_string(),
            RawValue::Text(t) => format!("{t:?}"),
            RawValue::Bool(b) => b.to_string(),
            RawValue::Null => "null".into(),
            RawValue::Nested => "an object or array".into(),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            RawValue::Number(n) if n.is_finite() => Some(*n),
            // Through i64 where it fits: the same rounding, without the slow i128 path.
            RawValue::Integer(n) => Some(match i64::try_from(*n) {
                Ok(n) => n as f64,
                Err(_) => *n as f64,
            }),
            _ => None,
        }
    }
}

/// `str::trim`, without its Unicode scan for the usual text that starts and ends with a
/// visible ASCII character.
fn trim(text: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    let bytes = text.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// The station code from outside the payload (Kafka key, MQTT topic), when it has one.
fn outside_code(station: Option<&str>) -> Option<&str> {
    station.map(str::trim).filter(|code| !code.is_empty())
}

#[derive(Default)]
struct RawRecord<'a> {
    station: Option<RawValue<'a>>,
    ts: Option<RawValue<'a>>,
    seq: Option<RawValue<'a>>,
    signals: SmallVec<[(SignalKey, RawValue<'a>); 4]>,
    unknown_keys: u32,
    not_an_object: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SignalKey {
    GoodDelta,
    GoodTotal,
    BadDelta,
    BadTotal,
    Productive,
    ErrorCode,
    LineSpeed,
    KwhTotal,
    KwhDelta,
    Rssi,
}

impl SignalKey {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "production_complete_good" | "production_complete" => SignalKey::GoodDelta,
            "production_count_good" | "production_count" => SignalKey::GoodTotal,
            "production_complete_bad" => SignalKey::BadDelta,
            "production_count_bad" => SignalKey::BadTotal,
            "productive" => SignalKey::Productive,
            "error_code" => SignalKey::ErrorCode,
            "line_speed" => SignalKey::LineSpeed,
            "electrical_kwh" => SignalKey::KwhTotal,
            "electrical_kwh_interval" => SignalKey::KwhDelta,
            "rssi" => SignalKey::Rssi,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SignalKey::GoodDelta => "production_complete_good",
            SignalKey::GoodTotal => "production_count_good",
            SignalKey::BadDelta => "production_complete_bad",
            SignalKey::BadTotal => "production_count_bad",
            SignalKey::Productive => "productive",
            SignalKey::ErrorCode => "error_code",
            SignalKey::LineSpeed => "line_speed",
            SignalKey::KwhTotal => "electrical_kwh",
            SignalKey::KwhDelta => "electrical_kwh_interval",
            SignalKey::Rssi => "rssi",
        }
    }

    /// Validates a value for this key: counts, meters and speeds are finite and not
    /// negative; `rssi` may be negative (dBm); `productive` is 0/1 or a boolean;
    /// `error_code` is a string, an integer code, or null.
    fn reading(self, value: &RawValue<'_>) -> Result<Reading, Rejection> {
        let bad = || {
            let rule = match self {
                SignalKey::Productive => "0, 1, true or false",
                SignalKey::ErrorCode => "a string, an integer or null",
                SignalKey::Rssi => "a number of magnitude at most 1e15",
                _ => "a number from 0 to 1e15",
            };
            Rejection::new(
                RejectReason::BadValue,
                format!(
                    "{} = {} is not valid: {rule}",
                    self.name(),
                    value.describe()
                ),
            )
        };
        match (self, value) {
            (SignalKey::Productive, RawValue::Bool(b)) => Ok(Reading::Productive(*b)),
            (SignalKey::ErrorCode, RawValue::Null) => Ok(Reading::ErrorCode(None)),
            (SignalKey::ErrorCode, RawValue::Text(t)) => Ok(Reading::error_code(t)),
            (SignalKey::ErrorCode, RawValue::Integer(n)) => {
                Ok(Reading::ErrorCode(Some(n.to_string().into())))
            }
            _ => value.as_f64().and_then(|v| self.number(v)).ok_or_else(bad),
        }
    }

    /// A number for this key, validated: counts, meters and speeds are finite and not
    /// negative; `rssi` may be negative (dBm); `productive` is 0 or 1; an `error_code`
    /// number must be an integer (the caller handles those).
    #[inline(always)] // built in place: returned through memory it stalls the loads after
    fn number(self, v: f64) -> Option<Reading> {
        if !v.is_finite() || v.abs() > MAX_QUANTITY {
            return None; // NaN, infinite, or a glitch whose sums would not stay finite
        }
        let count = (v >= 0.0).then_some(v);
        Some(match self {
            SignalKey::Productive if v == 0.0 || v == 1.0 => Reading::Productive(v == 1.0),
            SignalKey::Productive | SignalKey::ErrorCode => return None,
            SignalKey::Rssi => Reading::Rssi(v),
            SignalKey::GoodDelta => Reading::GoodDelta(count?),
            SignalKey::GoodTotal => Reading::GoodTotal(count?),
            SignalKey::BadDelta => Reading::BadDelta(count?),
            SignalKey::BadTotal => Reading::BadTotal(count?),
            SignalKey::LineSpeed => Reading::LineSpeed(count?),
            SignalKey::KwhTotal => Reading::KwhTotal(count?),
            SignalKey::KwhDelta => Reading::KwhDelta(count?),
        })
    }
}

impl<'a> RawRecord<'a> {
    fn put(&mut self, key: &str, value: RawValue<'a>) {
        match key {
            "station" => self.station = Some(value),
            "ts" => self.ts = Some(value),
            "seq" => self.seq = Some(value),
            other => match SignalKey::from_key(other) {
                Some(k) => {
                    // A later duplicate key (or alias) replaces the earlier value.
                    if let Some(i) = self.signals.iter().position(|(e, _)| *e == k) {
                        self.signals.remove(i);
                    }
                    self.signals.push((k, value));
                }
                None => self.unknown_keys += 1,
            },
        }
    }

    fn fill(
        &self,
        station: Option<&str>,
        fallback_ts_ms: Option<i64>,
        out: &mut SignalRecord,
    ) -> Result<(), Rejection> {
        if self.not_an_object {
            return Err(Rejection::new(
                RejectReason::MalformedJson,
                "the payload is not a JSON object",
            ));
        }
        let code = match &self.station {
            Some(RawValue::Text(t)) if !trim(t).is_empty() => trim(t),
            Some(RawValue::Null) | None => outside_code(station).ok_or_else(|| {
                Rejection::new(
                    RejectReason::UnknownStation,
                    "no station code in the record or its key",
                )
            })?,
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::BadValue,
                    format!("station = {} is not a string", other.describe()),
                ))
            }
        };
        out.station.clear();
        out.station.push_str(code);
        out.ts = self.ts(fallback_ts_ms)?;
        out.seq = match &self.seq {
            None | Some(RawValue::Null) => None,
            Some(RawValue::Integer(n)) if *n >= 0 && *n <= u64::MAX as i128 => Some(*n as u64),
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::BadValue,
                    format!("seq = {} is not a non-negative integer", other.describe()),
                ))
            }
        };
        out.readings.clear();
        for (key, value) in &self.signals {
            out.readings.push(key.reading(value)?);
        }
        out.unknown_keys = self.unknown_keys;
        Ok(())
    }

    fn ts(&self, fallback_ts_ms: Option<i64>) -> Result<i64, Rejection> {
        Ok(match &self.ts {
            None | Some(RawValue::Null) => fallback_ts_ms
                .ok_or_else(|| Rejection::new(RejectReason::MissingTs, "the record has no ts"))?,
            Some(RawValue::Text(t)) => parse_rfc3339_ms(t).ok_or_else(|| {
                Rejection::new(
                    RejectReason::BadTs,
                    format!("ts {t:?} is not RFC 3339 with an offset"),
                )
            })?,
            Some(RawValue::Integer(n)) => i64::try_from(*n)
                .ok()
                .filter(|n| n.unsigned_abs() < TS_LIMIT_MS)
                .ok_or_else(|| {
                    Rejection::new(RejectReason::BadTs, format!("ts {n} is out of range"))
                })?,
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::BadTs,
                    format!(
                        "ts {} is neither RFC 3339 nor integer epoch milliseconds",
                        other.describe()
                    ),
                ))
            }
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawRecord<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordVisitor(std::marker::PhantomData))
    }
}

struct RecordVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RecordVisitor<'a> {
    type Value = RawRecord<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut rec = RawRecord::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: RawValue<'de> = map.next_value()?;
            rec.put(&key, value);
        }
        Ok(rec)
    }

    fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawRecord {
            not_an_object: true,
            ..Default::default()
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor(std::marker::PhantomData))
    }
}

struct ValueVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
    type Value = RawValue<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawValue::Integer(v as i128))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawValue::Integer(v as i128))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(RawValue::Number(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(RawValue::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawValue::Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(RawValue::Text(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::Null)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RawValue::Nested)
    }
    fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawValue::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> DecodeOutcome {
        decode_json(text.as_bytes(), None, None)
    }

    #[test]
    fn decodes_busroot_payload_with_aliases() {
        let r = decode(
            r#"{"station":"P1","ts":"2026-03-02T06:00:01.250Z","seq":7,"productive":1,
                "production_complete":2,"production_count_bad":5,"error_code":"","rssi":-61,"fw":"1.2"}"#,
        )
        .unwrap();
        assert_eq!(r.station, "P1");
        assert_eq!(r.ts, 1_772_431_201_250);
        assert_eq!(r.seq, Some(7));
        assert_eq!(r.unknown_keys, 1);
        assert_eq!(
            r.readings.to_vec(),
            vec![
                Reading::Productive(true),
                Reading::GoodDelta(2.0),
                Reading::BadTotal(5.0),
                Reading::ErrorCode(None),
                Reading::Rssi(-61.0)
            ]
        );
    }

    #[test]
    fn epoch_ms_key_station_and_fallback_ts() {
        let r = decode_json(br#"{"ts":60000,"error_code":42}"#, Some("K1"), None).unwrap();
        assert_eq!((r.station.as_str(), r.ts), ("K1", 60_000));
        assert_eq!(r.readings[0], Reading::ErrorCode(Some("42".into())));
        let r = decode_json(
            br#"{"station":"F1","productive":false}"#,
            Some("K1"),
            Some(5),
        )
        .unwrap();
        assert_eq!((r.station.as_str(), r.ts), ("F1", 5));
    }

    #[test]
    fn long_format_rows_follow_the_json_rules() {
        assert_eq!(
            reading_from_text("production_complete", "3").unwrap(),
            Some(Reading::GoodDelta(3.0))
        );
        assert_eq!(
            reading_from_text("productive", "true").unwrap(),
            Some(Reading::Productive(true))
        );
        assert_eq!(
            reading_from_text("error_code", "").unwrap(),
            Some(Reading::ErrorCode(None))
        );
        assert_eq!(
            reading_from_text("error_code", "42").unwrap(),
            Some(Reading::ErrorCode(Some("42".into())))
        );
        assert_eq!(reading_from_text("firmware", "1.2").unwrap(), None);
        assert_eq!(
            reading_from_text("line_speed", "fast").unwrap_err().reason,
            RejectReason::BadValue
        );
        assert_eq!(ts_from_text("60000").unwrap(), 60_000);
        assert_eq!(ts_from_text("1970-01-01T00:01:00Z").unwrap(), 60_000);
        assert_eq!(
            ts_from_text("yesterday").unwrap_err().reason,
            RejectReason::BadTs
        );
    }

    #[test]
    fn every_bad_input_gets_its_reason() {
        let reason = |t: &str| decode(t).unwrap_err().reason;
        assert_eq!(reason("{not json"), RejectReason::MalformedJson);
        assert_eq!(reason("[1,2]"), RejectReason::MalformedJson);
        assert_eq!(reason("42"), RejectReason::MalformedJson);
        assert_eq!(
            reason(r#"{"station":"S","productive":1}"#),
            RejectReason::MissingTs
        );
        assert_eq!(
            reason(r#"{"station":"S","ts":"2026-03-02 06:00"}"#),
            RejectReason::BadTs
        );
        assert_eq!(reason(r#"{"station":"S","ts":1.5}"#), RejectReason::BadTs);
        assert_eq!(reason(r#"{"ts":0}"#), RejectReason::UnknownStation);
        assert_eq!(
            reason(r#"{"station":"S","ts":0,"production_complete_good":-1}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"station":"S","ts":0,"productive":2}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"station":"S","ts":0,"line_speed":"fast"}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"station":"S","ts":0,"seq":-3}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"station":"S","ts":0,"electrical_kwh":{"a":1}}"#),
            RejectReason::BadValue
        );
    }

    fn serde_path(bytes: &[u8]) -> DecodeOutcome {
        let raw: RawRecord = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::new(RejectReason::MalformedJson, e.to_string()))?;
        let mut record = SignalRecord::default();
        raw.fill(Some("KEY"), None, &mut record).map(|_| record)
    }

    fn flat_path(bytes: &[u8]) -> Option<DecodeOutcome> {
        // A record left over from another payload: the fast path must overwrite it all.
        let mut record = decode(r#"{"station":"OLD","ts":1,"seq":9,"rssi":1,"fw":0}"#).ok()?;
        flat::decode(bytes, Some("KEY"), None, &mut record)?;
        Some(Ok(record))
    }

    fn json_key() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::sample::select(vec![
            "station",
            "ts",
            "seq",
            "productive",
            "production_complete",
            "production_count_good",
            "production_complete_bad",
            "error_code",
            "line_speed",
            "electrical_kwh",
            "rssi",
            "fw",
            "st\\u0061tion",
            "größe",
            "",
        ])
        .prop_map(|k| format!("\"{k}\""))
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        let fixed = proptest::sample::select(vec![
            "true",
            "false",
            "null",
            "0",
            "-0",
            "1",
            "01",
            "-1",
            "1.5",
            "-0.0",
            "1e3",
            "2E-2",
            "1.",
            ".5",
            "1e400",
            "123456789012345678",
            "1234567890123456789",
            "18446744073709551616",
            "\"\"",
            "\" P1 \"",
            "\"2026-03-02T06:00:01.250Z\"",
            "\"2026-03-02T06:00:01+01:00\"",
            "\"a\\\"b\"",
            "\"é\"",
            "{}",
            "[1]",
            "{\"a\":1}",
            "tru",
            "nul",
            "-",
            "+1",
            "1_000",
            "NaN",
        ])
        .prop_map(str::to_string);
        let numbers = proptest::num::f64::NORMAL.prop_map(|f| format!("{f:e}"));
        let integers = proptest::num::i64::ANY.prop_map(|i| i.to_string());
        proptest::prop_oneof![6 => fixed, 1 => numbers, 1 => integers]
    }

    use proptest::strategy::Strategy as _;

    #[test]
    fn payload_json_decodes_to_the_same_record() {
        let original = decode(
            r#"{"station":"P1","ts":"2026-03-02T06:00:01.250+01:00","seq":7,"productive":1,
                "production_complete":2.5,"error_code":"E 7","rssi":-61,"electrical_kwh":12.125}"#,
        )
        .unwrap();
        let again = decode(&original.to_payload_json()).unwrap();
        assert!(original
            .to_payload_json()
            .contains(r#""ts":"2026-03-02T05:00:01.250Z""#));
        assert_eq!(
            again,
            SignalRecord {
                unknown_keys: 0,
                ..original
            }
        );
    }

    #[test]
    fn typical_payloads_take_the_flat_path() {
        let typical = br#"{"station":"P1","ts":"2026-03-02T06:00:01.250Z","seq":7,"productive":1,
            "production_complete": 2.5, "error_code":null,"rssi":-61,"fw":"1.2"}"#;
        assert_eq!(flat_path(typical), Some(serde_path(typical)));
        for fast in [
            r#"{"ts":0,"production_count":3,"error_code":42,"seq":null}"#,
            r#"{"station":" P1 ","ts":"2026-03-02T06:00:01+01:00","productive":true}"#,
            r#"{"station":"P1","ts":0,"production_complete_bad":0.5,"electrical_kwh":1e3}"#,
            r#"{"station":"P1","ts":0,"line_speed":-0,"error_code":"  ","rssi":-7.5}"#,
        ] {
            let flat = flat_path(fast.as_bytes());
            assert_eq!(flat, Some(serde_path(fast.as_bytes())), "{fast}");
        }
        for general in [
            r#"{"station":"P1","ts":0,"productive":1,"productive":0}"#,
            r#"{"station":"P1","ts":0,"production_complete":1,"production_complete_good":2}"#,
            r#"{"station":"P1","station":"P2","ts":0}"#,
            r#"{"station":"P1","ts":0,"productive":2}"#,
            r#"{"station":"","ts":0}"#,
            r#"{"station":"P1"}"#,
        ] {
            assert!(flat_path(general.as_bytes()).is_none(), "{general}");
        }
        assert!(flat_path(br#"{"station":"P\u0031","ts":0}"#).is_none());
        assert!(flat_path(br#"{"station":"P1","ts":0,"x":{"a":1}}"#).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(5_000))]
        #[test]
        fn flat_agrees_with_serde(
            head in proptest::sample::select(vec![
                vec![],
                vec![("\"station\"", "\"P1\"")],
                vec![("\"ts\"", "60000")],
                vec![("\"station\"", "\"P1\""), ("\"ts\"", "\"2026-03-02T06:00:01.250Z\"")],
            ]),
            pairs in proptest::collection::vec((json_key(), json_value()), 0..6),
            ws in proptest::sample::select(vec!["", " ", "\t", "\r\n"]),
            cut in proptest::option::weighted(0.1, 0usize..80),
        ) {
            // A valid head most of the time, so that many cases reach the fast path's end.
            let head = head.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            let body: Vec<String> = head
                .chain(pairs)
                .map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
                .collect();
            let mut text = format!("{ws}{{{}}}{ws}", body.join(",")).into_bytes();
            if let Some(cut) = cut {
                text.truncate(cut.min(text.len()));
            }
            if let Some(flat) = flat_path(&text) {
                let shown = String::from_utf8_lossy(&text);
                proptest::prop_assert_eq!(flat, serde_path(&text), "{}", shown);
            }
        }

        /// The usual layout (`flat::decode_usual`), close to valid and slightly off.
        #[test]
        fn usual_layout_agrees_with_serde(
            code in proptest::sample::select(vec![
                "ST-00001", "P1", " P1", "P1 ", "", "a\\\"b", "é", "x23456789012345678901234",
            ]),
            ts in proptest::sample::select(vec![
                "\"2026-03-02T06:00:01.250Z\"", "\"2026-03-02T06:00:01Z\"",
                "\"2026-03-02T06:00:01.250+01:00\"", "\"2026-13-02T06:00:01.250Z\"",
                "\"2026-03-02T06:00:61.250Z\"", "60000", "-1", "1.5", "null",
            ]),
            seq in json_value(),
            pairs in proptest::collection::vec((json_key(), json_value()), 0..4),
            cut in proptest::option::weighted(0.1, 0usize..120),
        ) {
            let signals: String = pairs.iter().map(|(k, v)| format!(",{k}:{v}")).collect();
            let line = format!(r#"{{"station":"{code}","ts":{ts},"seq":{seq}{signals}}}"#);
            let mut text = line.into_bytes();
            if let Some(cut) = cut {
                text.truncate(cut.min(text.len()));
            }
            if let Some(flat) = flat_path(&text) {
                let shown = String::from_utf8_lossy(&text);
                proptest::prop_assert_eq!(flat, serde_path(&text), "{}", shown);
            }
        }
    }
}
