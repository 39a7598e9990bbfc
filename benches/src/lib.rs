//! Workloads shared by the benches and the profiling example.

use stationflow_operators::{synthetic, Emitted, FlowConfig, Now, StationFlow};
use stationflow_schemas::signal::SignalRecord;

/// Records between advances, as `stationflow replay` has them.
const BATCH_RECORDS: usize = 8192;

/// Replays records through a fresh `StationFlow` for a `stations`-station synthetic plant
/// the way the replay driver does: admitted into a batch, inserted and advanced every
/// 8,192 records with the rows handed over in bounded amounts, then finished; returns the
/// number of windows emitted.
pub fn replay_synthetic(stations: usize, records: &[SignalRecord]) -> usize {
    let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
    let mut windows = 0;
    let count = |windows: &mut usize, rows: &mut Emitted| {
        *windows += rows.windows.len();
        rows.windows.clear();
        rows.events.clear();
        Ok::<(), std::convert::Infallible>(())
    };
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut now = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        let at = now.max(r.ts);
        if flow.admit(r, Now(at), &mut batch).is_ok() {
            now = at;
        }
        if i % BATCH_RECORDS == BATCH_RECORDS - 1 {
            flow.insert(&mut batch);
            let Ok(()) =
                flow.advance_into(Now(now), 65_536, std::slice::from_mut(&mut windows), count);
        }
    }
    flow.insert(&mut batch);
    let Ok(()) = flow.advance_into(Now(now), 65_536, std::slice::from_mut(&mut windows), count);
    let Ok(()) = flow.finish_into(Now(now), 65_536, std::slice::from_mut(&mut windows), count);
    windows
}
