//! A station's state at a snapshot minute in a few bytes: a station keeps two or more
//! (a million stations millions), and most of a state's fields are empty or close to
//! one another. A header says which fields are there; times are varints relative to the
//! snapshot's minute or the last record's; readings are integers, thousandths or millionths where that gives them
//! back exactly, eight bytes otherwise. Up to `INLINE` bytes live in the 32-byte value
//! itself (a discrete or counting station's state, ~15–25 bytes); longer ones are boxed.
//! A walk unpacks the one it starts from.

use crate::checkpoint::format2;
use crate::timeline::{PendingSpan, StationState};
use crate::varint::{get_varint, get_word, unzigzag, zigzag, Writer};

/// Bytes held in the value itself.
const INLINE: usize = 30;
/// The most bytes a state packs into: a header, an error code, five times or spans in
/// ten bytes each, the pending span's third number, five readings in nine or ten.
const MOST: usize = 2 + 5 + 6 * 10 + 5 * 10;

/// The header's bits: which fields follow, and two flags.
const PRODUCTIVE: u32 = 1;
const PENDING_QUALIFIED: u32 = 1 << 1;
const ERROR: u32 = 1 << 2;
const LAST_RECORD: u32 = 1 << 3;
const STALE_AT: u32 = 1 << 4;
const LAST_COMPLETION: u32 = 1 << 5;
const PENDING: u32 = 1 << 6;
/// The first of the five readings' bits, in `readings` order.
const FIRST_READING: u32 = 7;

/// A reading's scales, the low two bits of its varint; `RAW`: eight bytes follow.
const SCALES: [f64; 3] = [1.0, 1e3, 1e6];
const RAW: u64 = 3;
/// Scaled readings stay below this, where every integer is a float.
const EXACT_BELOW: f64 = 9_007_199_254_740_992.0;

/// A `StationState` and whether the windows before its minute treat its pending span as
/// downtime, packed.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedState(Bytes);

#[derive(Debug, Clone, PartialEq)]
enum Bytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<[u8]>),
}

fn readings(state: &StationState) -> [Option<f64>; 5] {
    [
        state.good_total,
        state.bad_total,
        state.kwh_total,
        state.line_speed,
        state.rssi,
    ]
}

fn put_reading(out: &mut Writer, v: f64) {
    for (kind, scale) in SCALES.iter().enumerate() {
        let scaled = v * scale;
        // False for NaN and infinities, which go raw.
        if scaled.abs() < EXACT_BELOW {
            let n = scaled.round() as i64;
            if unscaled(n, kind).to_bits() == v.to_bits() {
                out.varint((zigzag(n) << 2) | kind as u64);
                return;
            }
        }
    }
    out.varint(RAW);
    out.word(v.to_bits().to_le_bytes());
}

/// Divided, not multiplied by the inverse: the quotient is the float nearest the
/// decimal, as the reading was.
fn unscaled(n: i64, kind: usize) -> f64 {
    match kind {
        0 => n as f64,
        _ => n as f64 / SCALES[kind],
    }
}

fn get_reading(bytes: &[u8], at: &mut usize) -> f64 {
    let v = get_varint(bytes, at);
    match v & 3 {
        RAW => f64::from_bits(get_word(bytes, at)),
        kind => unscaled(unzigzag(v >> 2), kind as usize),
    }
}

impl PackedState {
    /// The state at `minute` (its times are stored relative to it).
    pub fn new(state: &StationState, minute: i64, pending_qualified: bool) -> PackedState {
        let mut room = [0u8; MOST];
        let mut out = Writer {
            room: &mut room,
            at: 0,
        };
        let mut header = 0;
        let mut set = |bit: u32, on: bool| header |= if on { bit } else { 0 };
        set(PRODUCTIVE, state.productive);
        set(PENDING_QUALIFIED, pending_qualified);
        set(ERROR, state.error.is_some());
        set(LAST_RECORD, state.last_record_ts.is_some());
        set(STALE_AT, state.stale_at.is_some());
        set(LAST_COMPLETION, state.last_completion_ts.is_some());
        set(PENDING, state.pending.is_some());
        for (i, v) in readings(state).iter().enumerate() {
            set(1 << (FIRST_READING + i as u32), v.is_some());
        }
        out.varint(header as u64);
        if let Some(e) = state.error {
            out.varint(e as u64);
        }
        // Wrapping: any two times give their difference back exactly.
        let base = state.last_record_ts.unwrap_or(minute);
        let time = |out: &mut Writer, t: i64, from: i64| out.varint(zigzag(t.wrapping_sub(from)));
        if let Some(t) = state.last_record_ts {
            time(&mut out, t, minute);
        }
        for t in [state.stale_at, state.last_completion_ts]
            .into_iter()
            .flatten()
        {
            time(&mut out, t, base);
        }
        if let Some(p) = state.pending {
            time(&mut out, p.anchor, base);
            time(&mut out, p.downtime_from, p.anchor);
            time(&mut out, p.qualify_after_ms, 0);
        }
        for v in readings(state).into_iter().flatten() {
            put_reading(&mut out, v);
        }
        let len = out.at;
        PackedState(if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..len].copy_from_slice(&room[..len]);
            Bytes::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            Bytes::Boxed(room[..len].into())
        })
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Bytes::Inline { len, bytes } => &bytes[..*len as usize],
            Bytes::Boxed(bytes) => bytes,
        }
    }

    fn header(&self) -> u32 {
        get_varint(self.bytes(), &mut 0) as u32
    }

    /// Whether the windows before this state's minute treat its pending span as downtime.
    pub fn pending_qualified(&self) -> bool {
        self.header() & PENDING_QUALIFIED != 0
    }

    /// The state it packs, at `minute` (the one it was packed at).
    pub fn unpack(&self, minute: i64) -> StationState {
        let bytes = self.bytes();
        let at = &mut 0;
        let header = get_varint(bytes, at) as u32;
        let has = |bit: u32| header & bit != 0;
        let error = has(ERROR).then(|| get_varint(bytes, at) as u32);
        let mut time = |from: i64| from.wrapping_add(unzigzag(get_varint(bytes, at)));
        let last_record_ts = has(LAST_RECORD).then(|| time(minute));
        let base = last_record_ts.unwrap_or(minute);
        let stale_at = has(STALE_AT).then(|| time(base));
        let last_completion_ts = has(LAST_COMPLETION).then(|| time(base));
        let pending = has(PENDING).then(|| {
            let anchor = time(base);
            PendingSpan {
                anchor,
                downtime_from: time(anchor),
                qualify_after_ms: time(0),
            }
        });
        let mut reading = |i: u32| has(1 << (FIRST_READING + i)).then(|| get_reading(bytes, at));
        StationState {
            productive: has(PRODUCTIVE),
            error,
            last_record_ts,
            stale_at,
            last_completion_ts,
            pending,
            good_total: reading(0),
            bad_total: reading(1),
            kwh_total: reading(2),
            line_speed: reading(3),
            rssi: reading(4),
        }
    }

    /// The snapshot of `minute` as a checkpoint keeps it.
    pub fn save(&self, minute: i64) -> format2::MinuteState {
        format2::MinuteState {
            state: self.unpack(minute).save(),
            pending_qualified: self.pending_qualified(),
        }
    }

    /// The snapshot of `minute` in a checkpoint.
    pub fn load(saved: format2::MinuteState, minute: i64) -> PackedState {
        PackedState::new(
            &StationState::load(saved.state),
            minute,
            saved.pending_qualified,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn time() -> impl Strategy<Value = Option<i64>> {
        prop_oneof![
            Just(None),
            Just(Some(i64::MIN)),
            Just(Some(i64::MAX)),
            (1_600_000_000_000..1_900_000_000_000i64).prop_map(Some),
            any::<i64>().prop_map(Some),
        ]
    }

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(-0.0)),
            Just(Some(f64::MAX)),
            Just(Some(0.1)),
            (-1_000_000_000i64..1_000_000_000).prop_map(|n| Some(n as f64 / 1e3)),
            (-1_000_000i64..1_000_000).prop_map(|n| Some(n as f64 / 1e6)),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(Some),
        ]
    }

    fn state() -> impl Strategy<Value = StationState> {
        (
            any::<bool>(),
            prop_oneof![Just(None), any::<u32>().prop_map(Some)],
            (time(), time(), time()),
            (value(), value(), value(), value(), value()),
            prop_oneof![
                Just(None),
                (any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
                    |(anchor, downtime_from, qualify_after_ms)| Some(PendingSpan {
                        anchor,
                        downtime_from,
                        qualify_after_ms,
                    })
                ),
            ],
        )
            .prop_map(|(productive, error, times, values, pending)| StationState {
                productive,
                error,
                last_record_ts: times.0,
                stale_at: times.1,
                last_completion_ts: times.2,
                good_total: values.0,
                bad_total: values.1,
                kwh_total: values.2,
                line_speed: values.3,
                rssi: values.4,
                pending,
            })
    }

    fn bits(s: &StationState) -> Vec<Option<u64>> {
        readings(s).iter().map(|v| v.map(f64::to_bits)).collect()
    }

    proptest! {
        /// Packing loses nothing a state can hold, `-0.0`, extremes and any times
        /// included.
        #[test]
        fn a_packed_state_unpacks_to_itself(state in state(), minute in time(), qualified in any::<bool>()) {
            let minute = minute.unwrap_or(0);
            let packed = PackedState::new(&state, minute, qualified);
            let back = packed.unpack(minute);
            prop_assert_eq!(&back, &state);
            prop_assert_eq!(bits(&back), bits(&state));
            prop_assert_eq!(packed.pending_qualified(), qualified);
        }
    }

    /// A discrete station's state a minute after its last unit, and a counting
    /// station's with its totals, fit in the value itself.
    #[test]
    fn a_usual_state_is_held_inline_in_32_bytes() {
        assert_eq!(std::mem::size_of::<PackedState>(), 32);
        let minute = 1_780_000_020_000;
        let t = minute - 7_250;
        let state = StationState {
            productive: true,
            error: Some(3),
            last_record_ts: Some(t),
            stale_at: Some(t + 300_000),
            last_completion_ts: Some(t - 41_250),
            pending: Some(PendingSpan {
                anchor: t,
                downtime_from: t + 30_000,
                qualify_after_ms: 90_000,
            }),
            good_total: Some(1_234_567.0),
            bad_total: Some(8_901.0),
            kwh_total: Some(45_678.125),
            ..StationState::default()
        };
        let packed = PackedState::new(&state, minute, true);
        assert!(
            matches!(packed.0, Bytes::Inline { .. }),
            "{}",
            packed.bytes().len()
        );
        assert_eq!(packed.unpack(minute), state);
        let speed = StationState {
            line_speed: Some(std::f64::consts::PI),
            rssi: Some(-67.0),
            ..state.clone()
        };
        let packed = PackedState::new(&speed, minute, false);
        assert!(matches!(packed.0, Bytes::Boxed(_)));
        assert_eq!(packed.unpack(minute), speed);
    }
}
