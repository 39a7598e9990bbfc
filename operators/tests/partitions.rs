//! Scale-out at the operator level: stations split among flows (one per partition of the
//! signals topic, live) give exactly the windows and events of one flow over every
//! station, each station's from one flow only; a record for a station another flow
//! answers for is rejected as `wrong_partition`, never applied twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use stationflow_operators::{
    synthetic, Emitted, FlowConfig, Now, Outcome, StationFilter, StationFlow,
};
use stationflow_schemas::signal::SignalRecord;
use stationflow_schemas::RejectReason;

const PARTITIONS: u32 = 3;

fn partition_of(code: &str) -> u32 {
    code.bytes().map(u32::from).sum::<u32>() % PARTITIONS
}

fn owner(partition: u32) -> StationFilter {
    Arc::new(move |code: &str, _plant: &str| partition_of(code) == partition)
}

/// Latest revision of every window and event (without revision and emit time), and
/// which flow emitted each station's windows.
#[derive(Default)]
struct Output {
    windows: BTreeMap<(String, i64), (i32, Vec<String>)>,
    events: BTreeMap<(String, i64), (i32, Vec<String>)>,
    emitted_by: BTreeMap<String, std::collections::BTreeSet<u32>>,
}

impl Output {
    fn collect(&mut self, rows: Emitted, who: u32) {
        for w in rows.windows {
            let cells = w.cells();
            self.emitted_by
                .entry(w.station.to_string())
                .or_default()
                .insert(who);
            let entry = self.windows.entry((w.station.to_string(), w.window_start));
            let latest = entry.or_insert((-1, Vec::new()));
            if w.revision > latest.0 {
                *latest = (w.revision, cells[..cells.len() - 2].to_vec());
            }
        }
        for e in rows.events {
            let cells = e.cells();
            let entry = self.events.entry((e.station.clone(), e.start));
            let latest = entry.or_insert((-1, Vec::new()));
            if e.revision > latest.0 {
                *latest = (e.revision, cells[..cells.len() - 2].to_vec());
            }
        }
    }

    fn latest(&self) -> (Vec<&Vec<String>>, Vec<&Vec<String>>) {
        (
            self.windows.values().map(|(_, c)| c).collect(),
            self.events.values().map(|(_, c)| c).collect(),
        )
    }
}

/// Runs `flows` side by side as a live driver would: each gets its own stations'
/// records, all share one clock (here the largest ts seen anywhere).
fn run(flows: &mut [(u32, StationFlow)], records: &[SignalRecord], route: bool) -> Output {
    let mut out = Output::default();
    let mut now = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        now = now.max(r.ts);
        let target = if route { partition_of(&r.station) } else { 0 };
        let (_, flow) = flows.iter_mut().find(|(p, _)| *p == target).unwrap();
        assert_eq!(flow.apply(r, Now(now)), Outcome::Applied, "{r:?}");
        if i % 5_000 == 4_999 {
            for (p, flow) in flows.iter_mut() {
                out.collect(flow.advance(Now(now)), *p);
            }
        }
    }
    for (p, flow) in flows.iter_mut() {
        out.collect(flow.advance(Now(now)), *p);
        out.collect(flow.finish(Now(now)), *p);
    }
    out
}

#[test]
fn split_flows_emit_what_one_flow_emits() {
    let stations = 24;
    let context = synthetic::plant(stations);
    let records: Vec<SignalRecord> = synthetic::signals(stations, 60_000, 1_000, 7).collect();

    let whole = run(
        &mut [(0, StationFlow::new(context.clone(), FlowConfig::default()))],
        &records,
        false,
    );
    let mut split: Vec<(u32, StationFlow)> = (0..PARTITIONS)
        .map(|p| {
            let flow = StationFlow::new(context.clone(), FlowConfig::default());
            (p, flow.with_stations(owner(p)))
        })
        .collect();
    let parts = run(&mut split, &records, true);

    assert_eq!(parts.emitted_by.len(), stations);
    for (station, flows) in &parts.emitted_by {
        assert_eq!(flows.len(), 1, "{station} emitted by {flows:?}");
        assert!(flows.contains(&partition_of(station)));
    }
    assert!(!whole.windows.is_empty() && !whole.events.is_empty());
    let (whole_windows, whole_events) = whole.latest();
    let (split_windows, split_events) = parts.latest();
    assert_eq!(whole_windows.len(), split_windows.len());
    assert!(whole_windows == split_windows, "latest windows differ");
    assert!(whole_events == split_events, "latest events differ");
}

#[test]
fn a_station_of_another_partition_is_rejected_not_applied() {
    let context = synthetic::plant(6);
    let record = synthetic::signals(6, 6, 1_000, 1)
        .find(|r| partition_of(&r.station) != 0)
        .expect("a station outside partition 0");
    let mut flow = StationFlow::new(context, FlowConfig::default()).with_stations(owner(0));
    assert_eq!(
        flow.apply(&record, Now(record.ts)),
        Outcome::Rejected(RejectReason::WrongPartition)
    );
    assert_eq!(flow.counters().applied, 0);
    assert_eq!(flow.counters().rejected[&RejectReason::WrongPartition], 1);

    // Restored flows answer for the stations they are given again.
    let snapshot = flow.snapshot();
    let mut restored = (StationFlow::restore(synthetic::plant(6), snapshot).expect("whole"))
        .with_stations(owner(0));
    assert_eq!(
        restored.apply(&record, Now(record.ts)),
        Outcome::Rejected(RejectReason::WrongPartition)
    );
}
