//! The pure core of stationflow: signal records and versioned context in, station
//! windows and downtime events out. No I/O and no clock: time is an argument.
//!
//! The data's path: `record` (compact, keyed by station) → `station` (event log,
//! snapshots, watermark) → `timeline` (station state over time, per-minute facts) →
//! `downtime` (detection) → `metrics` (OEE, losses, cost) → emitted revisions, all driven
//! by `flow::StationFlow`.

pub mod alerts;
pub mod event_log;
pub mod fingerprint;
pub mod flow;
pub mod intervals;
mod lent;
pub mod metrics;
pub mod plan;
mod prefetch;
pub mod record;
pub mod seq_set;
pub mod shift_calendar;
mod snapshots;
pub mod station;
mod station_codes;
mod station_runs;
pub mod timeline;

pub use flow::{
    Admitted, Counters, FlowConfig, FlowSnapshot, Inserted, Outcome, StationFilter, StationFlow,
    DEFAULT_EARLIEST_TS_MS, LATEST_TS_MS, MAX_ERROR_CODES, MAX_NEW_ERROR_CODES_PER_STATION,
    MAX_RECORDS_AT_ONE_INSTANT,
};
pub use station::Emitted;
pub mod synthetic;
