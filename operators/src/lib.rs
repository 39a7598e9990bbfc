//! The pure core of stationflow: signal records and versioned context in, station
//! windows and downtime events out. No I/O and no clock: time is an argument.
//!
//! The public surface is `StationFlow` (its doc comment is the contract: admit, insert,
//! advance), what goes in and comes out of it, the context index it keeps, the alert
//! rules the live engine judges windows by (`alerts`), what a checkpoint holds of the
//! flow and the alerts, by format (`checkpoint`), and synthetic plants and signals for
//! tests and benches (`synthetic`).
//!
//! Inside, the data's path: `record` (compact, keyed by station) → `station` (event log,
//! snapshots, watermark) → `timeline` (station state over time, closed stops, per-minute
//! facts) → `metrics` (time accounting, downtime, OEE, losses, cost) → emitted revisions,
//! all driven by `flow`.

#![warn(missing_docs)]

pub mod alerts;
pub mod checkpoint;
mod event_log;
mod fingerprint;
mod flow;
mod intervals;
mod lent;
mod maybe_time;
mod metrics;
mod packed_state;
mod plan;
mod prefetch;
mod record;
mod rings;
mod seq_set;
mod shift_calendar;
mod snapshots;
mod station;
mod station_codes;
mod station_runs;
mod timeline;
mod varint;

pub use checkpoint::{FlowSnapshot, RestoreError};
pub use flow::{
    Admitted, Counters, FlowConfig, Inserted, Now, Outcome, StationFilter, StationFlow,
    DEFAULT_EARLIEST_TS_MS, LATEST_TS_MS, MAX_ERROR_CODES, MAX_NEW_ERROR_CODES_PER_STATION,
    MAX_RECORDS_AT_ONE_INSTANT,
};
pub use plan::{ContextIndex, IndexWork};
pub use station::Emitted;
pub mod synthetic;
