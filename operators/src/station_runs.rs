//! An advance split into runs of neighbouring stations, one per sink. Stations are
//! independent once their records are in, so each run is refreshed on a thread of its
//! own and hands its rows to its own sink; the rows are those of one run over every
//! station, split by station.

use stationflow_schemas::time::MINUTE_MS;
use stationflow_schemas::window::DowntimeEvent;

use crate::flow::{Admission, Counters};
use crate::plan::ContextIndex;
use crate::record::ErrorCodes;
use crate::station::{Emitted, StationOp};

/// What every run reads.
pub(crate) struct Shared<'a> {
    pub ctx: &'a ContextIndex,
    pub errors: &'a ErrorCodes,
    pub allowed_lateness_ms: i64,
    pub max_refresh_ms: i64,
    pub now: i64,
    /// Rows a run gathers before it hands them to its sink.
    pub rows: usize,
}

/// What a run emitted, for the flow's counters.
#[derive(Debug, Default)]
pub(crate) struct Emits {
    windows: u64,
    revisions: u64,
    events: u64,
}

impl Emits {
    pub fn add_to(&self, counters: &mut Counters) {
        counters.windows_emitted += self.windows;
        counters.revisions_emitted += self.revisions;
        counters.events_emitted += self.events;
    }
}

/// Neighbouring stations and what the flow keeps beside each, all indexed alike.
pub(crate) struct StationRun<'a> {
    pub stations: &'a mut [StationOp],
    pub admission: &'a mut [Admission],
    /// The downtime open at each station's horizon, kept for a drain; empty when the
    /// flow forgoes it.
    pub underway: &'a mut [Option<Option<Box<DowntimeEvent>>>],
    pub owned: &'a [bool],
    /// Where each station's windows are to reach.
    pub horizons: &'a [i64],
}

impl StationRun<'_> {
    /// Refreshes each owned station to its horizon, in steps of `max_refresh_ms` at most,
    /// handing `out` to `drain` whenever `rows` or more windows wait, and at the end.
    /// In one step, a replay whose first record a device dated decades early (a clock
    /// reset to 1970) asked for tens of gigabytes.
    pub fn refresh<S, E>(
        mut self,
        shared: &Shared,
        out: &mut Emitted,
        sink: &mut S,
        drain: &impl Fn(&mut S, &mut Emitted) -> Result<(), E>,
    ) -> Result<Emits, E> {
        let mut emits = Emits::default();
        let step_ms = shared.max_refresh_ms.max(MINUTE_MS);
        for i in 0..self.stations.len() {
            if !self.owned[i] {
                continue;
            }
            let horizon = self.horizons[i];
            let mut at = self.stations[i].horizon;
            loop {
                let step = horizon.min(at.saturating_add(step_ms));
                self.refresh_one(i, step, shared, out, &mut emits);
                if out.windows.len() >= shared.rows {
                    hand_over(out, sink, drain)?;
                }
                if step >= horizon {
                    break;
                }
                at = step;
            }
        }
        if !out.windows.is_empty() || !out.events.is_empty() {
            hand_over(out, sink, drain)?;
        }
        Ok(emits)
    }

    fn refresh_one(
        &mut self,
        i: usize,
        horizon: i64,
        shared: &Shared,
        out: &mut Emitted,
        emits: &mut Emits,
    ) {
        let station = &mut self.stations[i];
        if !station.needs_refresh(horizon) {
            return;
        }
        let floor = horizon.max(station.horizon) - shared.allowed_lateness_ms;
        let (windows, events) = (out.windows.len(), out.events.len());
        let underway = station.refresh(shared.ctx, shared.errors, horizon, floor, shared.now, out);
        self.admission[i] = Admission::of(station);
        let new_windows = &out.windows[windows..];
        emits.windows += new_windows.len() as u64;
        emits.revisions += new_windows.iter().filter(|w| w.revision > 0).count() as u64;
        emits.events += (out.events.len() - events) as u64;
        if let Some(slot) = self.underway.get_mut(i) {
            *slot = Some(underway.map(Box::new));
        }
    }
}

/// Gives `out` to `drain`, and empties it of whatever `drain` left.
fn hand_over<S, E>(
    out: &mut Emitted,
    sink: &mut S,
    drain: &impl Fn(&mut S, &mut Emitted) -> Result<(), E>,
) -> Result<(), E> {
    let result = drain(sink, out);
    out.windows.clear();
    out.events.clear();
    result
}

/// Refreshes `runs`, each into its own `outs` and `sinks` entry: the first on this
/// thread, the others on threads of their own. The first error wins.
pub(crate) fn refresh_all<S: Send, E: Send>(
    runs: Vec<StationRun>,
    shared: &Shared,
    outs: &mut [Emitted],
    sinks: &mut [S],
    drain: &(impl Fn(&mut S, &mut Emitted) -> Result<(), E> + Sync),
) -> Result<Emits, E> {
    let mut work = runs.into_iter().zip(outs.iter_mut()).zip(sinks.iter_mut());
    let Some(((first, out), sink)) = work.next() else {
        return Ok(Emits::default());
    };
    let results: Vec<Result<Emits, E>> = std::thread::scope(|scope| {
        let others: Vec<_> = work
            .map(|((run, out), sink)| scope.spawn(move || run.refresh(shared, out, sink, drain)))
            .collect();
        let mut results = vec![first.refresh(shared, out, sink, drain)];
        for other in others {
            // A panic on a run's thread is a bug in the core: it goes on up as one.
            results.push(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        results
    });
    let mut total = Emits::default();
    for emits in results {
        let emits = emits?;
        total.windows += emits.windows;
        total.revisions += emits.revisions;
        total.events += emits.events;
    }
    Ok(total)
}
