//! Format 1 of a flow's saved state, read only to migrate it to format 2: the layout
//! serde gave the in-memory structs until they stopped being the format. Written by
//! every version before format 2, some of which lacked fields that later ones added;
//! those take the values the versions that read them gave them.
//!
//! The tables format 2 left as they were are format 2's own (the alerts' all are). One that format 3 changes
//! must first be copied here as it was (the fixture test of format 1 checks this).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::format2::{self, Block, Counters, MinuteState, Observation, Seqs};

/// A flow's state in format 1.
#[derive(Debug, Clone, Deserialize)]
pub struct FlowSnapshot {
    config: Config,
    stations: Vec<Station>,
    errors: ErrorCodes,
    origin: Option<i64>,
    max_ts: Option<i64>,
    counters: Counters,
}

/// Settings absent from a checkpoint took their defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    out_of_orderness_ms: i64,
    allowed_lateness_ms: i64,
    idle_timeout_ms: i64,
    max_clock_skew_ms: Option<i64>,
    earliest_ts_ms: i64,
    max_refresh_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        let d = crate::FlowConfig::DEFAULT;
        Config {
            out_of_orderness_ms: d.out_of_orderness_ms,
            allowed_lateness_ms: d.allowed_lateness_ms,
            idle_timeout_ms: d.idle_timeout_ms,
            max_clock_skew_ms: d.max_clock_skew_ms,
            earliest_ts_ms: d.earliest_ts_ms,
            max_refresh_ms: d.max_refresh_ms,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorCodes {
    names: Vec<String>,
}

/// A station; its `id` was its index, as format 2 keeps it.
#[derive(Debug, Clone, Deserialize)]
struct Station {
    emitted_from: i64,
    code: String,
    records: Records,
    max_ts: Option<i64>,
    dirty_from: Option<i64>,
    last_seen: Option<i64>,
    horizon: i64,
    seqs: Seqs,
    snapshots: BTreeMap<i64, MinuteState>,
    emitted: Vec<Option<EmittedWindow>>,
    events: BTreeMap<i64, EmittedEvent>,
    debounced_pruned: u64,
    #[serde(default)]
    late_until: i64,
}

/// A record with the hash of its observations, which format 2 computes again.
#[derive(Debug, Clone, Deserialize)]
struct Record {
    ts: i64,
    seq: Option<u64>,
    obs: Vec<Observation>,
}

#[derive(Debug, Clone, Deserialize)]
struct Records {
    cold: Vec<Block>,
    hot: Vec<Record>,
    hot_from: i64,
    #[serde(default = "unbounded_below")]
    horizon_block: i64,
    #[serde(default)]
    late_margin_until: Option<i64>,
}

fn unbounded_below() -> i64 {
    i64::MIN
}

/// Without `strong`, the fingerprint is the FxHash one.
#[derive(Debug, Clone, Copy, Deserialize)]
struct EmittedWindow {
    fingerprint: u64,
    revision: i32,
    debounced: u64,
    #[serde(default)]
    strong: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct EmittedEvent {
    end: i64,
    fingerprint: u64,
    revision: i32,
    retracted: bool,
    #[serde(default)]
    strong: bool,
}

impl From<FlowSnapshot> for format2::FlowSnapshot {
    fn from(v1: FlowSnapshot) -> Self {
        let c = v1.config;
        format2::FlowSnapshot {
            config: format2::Config {
                out_of_orderness_ms: c.out_of_orderness_ms,
                allowed_lateness_ms: c.allowed_lateness_ms,
                idle_timeout_ms: c.idle_timeout_ms,
                max_clock_skew_ms: c.max_clock_skew_ms,
                earliest_ts_ms: c.earliest_ts_ms,
                max_refresh_ms: c.max_refresh_ms,
            },
            stations: v1.stations.into_iter().map(Station::migrate).collect(),
            error_codes: v1.errors.names,
            origin: v1.origin,
            max_ts: v1.max_ts,
            counters: v1.counters,
        }
    }
}

impl Station {
    fn migrate(self) -> format2::Station {
        let r = self.records;
        format2::Station {
            code: self.code,
            emitted_from: self.emitted_from,
            records: format2::Records {
                blocks: r.cold,
                hot: (r.hot.into_iter())
                    .map(|r| format2::Record {
                        ts: r.ts,
                        seq: r.seq,
                        obs: r.obs,
                    })
                    .collect(),
                hot_from: r.hot_from,
                horizon_block: r.horizon_block,
                late_margin_until: r.late_margin_until,
            },
            max_ts: self.max_ts,
            dirty_from: self.dirty_from,
            last_seen: self.last_seen,
            horizon: self.horizon,
            seqs: self.seqs,
            snapshots: self.snapshots,
            emitted: (self.emitted.into_iter())
                .map(|e| e.map(EmittedWindow::migrate))
                .collect(),
            events: (self.events.into_iter())
                .map(|(start, e)| (start, e.migrate()))
                .collect(),
            debounced_pruned: self.debounced_pruned,
            late_until: self.late_until,
        }
    }
}

impl EmittedWindow {
    fn migrate(self) -> format2::EmittedWindow {
        format2::EmittedWindow {
            fingerprint: self.fingerprint,
            strong: self.strong,
            revision: self.revision,
            debounced: self.debounced,
        }
    }
}

impl EmittedEvent {
    fn migrate(self) -> format2::EmittedEvent {
        format2::EmittedEvent {
            end: self.end,
            fingerprint: self.fingerprint,
            strong: self.strong,
            revision: self.revision,
            retracted: self.retracted,
        }
    }
}
