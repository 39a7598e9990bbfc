//! Format 2 of a flow's saved state, the one written today: plain tables, every field
//! required, no field the reader does not know. A change to any of them is a new
//! format, with a migration from this one (as `format1` has to this).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stationflow_schemas::window::DowntimeEvent;
use stationflow_schemas::RejectReason;

/// A flow's state: its settings, every station's, and the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSnapshot {
    pub(crate) config: Config,
    /// Empty before the first record; then one per context station, in the context's
    /// order when written.
    pub(crate) stations: Vec<Station>,
    /// Interned error codes: records and states name them by index.
    pub(crate) error_codes: Vec<String>,
    pub(crate) origin: Option<i64>,
    pub(crate) max_ts: Option<i64>,
    pub(crate) counters: Counters,
}

/// `FlowConfig`, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    pub idle_timeout_ms: i64,
    pub max_clock_skew_ms: Option<i64>,
    pub earliest_ts_ms: i64,
    pub max_refresh_ms: i64,
}

/// `Counters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Counters {
    pub records_in: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    pub unknown_keys: u64,
    pub windows_emitted: u64,
    pub revisions_emitted: u64,
    pub events_emitted: u64,
    pub late_records: u64,
}

/// One station's operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Station {
    pub code: String,
    /// The minute of `emitted[0]`.
    pub emitted_from: i64,
    pub records: Records,
    pub max_ts: Option<i64>,
    pub dirty_from: Option<i64>,
    pub last_seen: Option<i64>,
    pub horizon: i64,
    pub seqs: Seqs,
    /// The station's state at the start of each minute held.
    pub snapshots: BTreeMap<i64, MinuteState>,
    /// Per minute from `emitted_from`: what was emitted for it, if anything.
    pub emitted: Vec<Option<EmittedWindow>>,
    /// Downtime events emitted, by start.
    pub events: BTreeMap<i64, EmittedEvent>,
    pub debounced_pruned: u64,
    pub late_until: i64,
}

/// A station's records inside the retained history: encoded blocks, then records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Records {
    /// Records before `hot_from`, one block per `BLOCK_MS` of event time, in order.
    pub blocks: Vec<Block>,
    /// Records at or after `hot_from`, in order.
    pub hot: Vec<Record>,
    pub hot_from: i64,
    pub horizon_block: i64,
    pub late_margin_until: Option<i64>,
}

/// The records of one span of two minutes from `start`, `count` of them, in order. Per
/// record: a varint of the time since the previous record (since `start` for the
/// first); a varint of the zigzagged change of seq since the previous seq, plus one (0
/// when it has none); a byte counting its observations; then each observation as a tag
/// byte, its kind (1 `Productive` to 10 `Rssi`, as `Observation` lists them) shifted
/// left by one over a bit, and its value. A `Productive` observation's bit is its value;
/// an `Error` has its code's index as a varint after it when the bit is set; the others
/// have a varint of a whole number when the bit is clear, else the eight bytes of an
/// `f64`, little-endian. Varints are LEB128.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Block {
    pub start: i64,
    pub count: u32,
    pub bytes: Vec<u8>,
}

/// A record, as received: its order among records of the same time and seq follows
/// from its observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub ts: i64,
    pub seq: Option<u64>,
    pub obs: Vec<Observation>,
}

/// One observation of a record; error codes by their index in `error_codes`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum Observation {
    Productive(bool),
    Error(Option<u32>),
    GoodDelta(f64),
    GoodTotal(f64),
    BadDelta(f64),
    BadTotal(f64),
    LineSpeed(f64),
    KwhTotal(f64),
    KwhDelta(f64),
    Rssi(f64),
}

/// The `seq` numbers held: bit `i` of `words` is seq `base + i`; others in `sparse`,
/// in ascending order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seqs {
    pub base: u64,
    pub words: Vec<u64>,
    pub sparse: Vec<u64>,
}

/// The station's state at a minute's start, and whether the windows before it treat
/// `state.pending` as downtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MinuteState {
    pub state: State,
    pub pending_qualified: bool,
}

/// `StationState`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    pub productive: bool,
    pub error: Option<u32>,
    pub last_record_ts: Option<i64>,
    pub stale_at: Option<i64>,
    pub good_total: Option<f64>,
    pub bad_total: Option<f64>,
    pub kwh_total: Option<f64>,
    pub last_completion_ts: Option<i64>,
    pub line_speed: Option<f64>,
    pub rssi: Option<f64>,
    pub pending: Option<PendingSpan>,
}

/// `PendingSpan`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingSpan {
    pub anchor: i64,
    pub downtime_from: i64,
    pub qualify_after_ms: i64,
}

/// What was emitted for a minute: the window's fingerprint (SipHash when `strong`,
/// else the FxHash of checkpoints before it), revision and debounced completions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmittedWindow {
    pub fingerprint: u64,
    pub strong: bool,
    pub revision: i32,
    pub debounced: u64,
}

/// What was emitted for a downtime event, as `EmittedWindow`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmittedEvent {
    pub end: i64,
    pub fingerprint: u64,
    pub strong: bool,
    pub revision: i32,
    pub retracted: bool,
}

/// What the alerts of a partition remember, by station.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSnapshot {
    pub(crate) stations: BTreeMap<String, StationAlerts>,
}

/// `alerts::StationAlerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StationAlerts {
    pub next_window: Option<i64>,
    pub streaks: BTreeMap<String, Streak>,
    /// As the `downtime_events` row it was announced from.
    pub underway: Option<DowntimeEvent>,
    pub announced: Vec<i64>,
}

/// A rule's streak: where it began, how many windows it has, whether it fired.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Streak {
    pub since: i64,
    pub windows: u32,
    pub firing: bool,
}
