//! Workloads shared by the benches and the profiling example.

use stationflow_operators::{synthetic, FlowConfig, StationFlow};
use stationflow_schemas::signal::SignalRecord;

/// Replays records through a fresh `StationFlow` for a `stations`-station synthetic plant
/// as the replay driver does (advance every 10,000 records, then finish); returns the
/// number of windows emitted.
pub fn replay_synthetic(stations: usize, records: &[SignalRecord]) -> usize {
    let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
    let mut windows = 0;
    let mut now = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        now = now.max(r.ts);
        flow.apply(r, now);
        if i % 10_000 == 9_999 {
            flow.advance(now);
            windows += flow.drain_windows().len();
            flow.drain_events();
        }
    }
    flow.advance(now);
    flow.finish(now);
    windows + flow.drain_windows().len()
}
