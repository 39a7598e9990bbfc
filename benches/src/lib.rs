//! Workloads shared by the benches and the examples.

use std::borrow::Borrow;

use stationflow_operators::{synthetic, Emitted, FlowConfig, Now, StationFlow};
use stationflow_schemas::signal::SignalRecord;

/// Records between advances, as `stationflow replay` has them.
const BATCH_RECORDS: usize = 8192;
/// Windows a sink is handed at most at once, as `stationflow replay` has them.
const DRAIN_ROWS: usize = 65_536;

/// Replays records through a fresh `StationFlow` for a `stations`-station synthetic plant
/// as `feed` does, then finishes; returns the number of windows emitted.
pub fn replay_synthetic(stations: usize, records: &[SignalRecord]) -> usize {
    let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
    let (mut windows, now) = feed(&mut flow, records);
    let sinks = std::slice::from_mut(&mut windows);
    let Ok(()) = flow.finish_into(Now(now), DRAIN_ROWS, sinks, count);
    windows
}

/// Feeds records to `flow` the way the replay driver does: admitted into a batch ("now"
/// the largest time admitted), inserted and advanced every 8,192 records and at the end,
/// the rows handed over in bounded amounts and dropped. Returns the windows emitted and
/// the last "now".
pub fn feed<R: Borrow<SignalRecord>>(
    flow: &mut StationFlow,
    records: impl IntoIterator<Item = R>,
) -> (usize, i64) {
    let mut windows = 0;
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut now = i64::MIN;
    for (i, r) in records.into_iter().enumerate() {
        let r = r.borrow();
        let at = now.max(r.ts);
        if flow.admit(r, Now(at), &mut batch).is_ok() {
            now = at;
        }
        if i % BATCH_RECORDS == BATCH_RECORDS - 1 {
            flow.insert(&mut batch);
            let sinks = std::slice::from_mut(&mut windows);
            let Ok(()) = flow.advance_into(Now(now), DRAIN_ROWS, sinks, count);
        }
    }
    flow.insert(&mut batch);
    let sinks = std::slice::from_mut(&mut windows);
    let Ok(()) = flow.advance_into(Now(now), DRAIN_ROWS, sinks, count);
    (windows, now)
}

/// A sink that counts the windows it is handed and drops the rows.
fn count(windows: &mut usize, rows: &mut Emitted) -> Result<(), std::convert::Infallible> {
    *windows += rows.windows.len();
    rows.windows.clear();
    rows.events.clear();
    Ok(())
}
