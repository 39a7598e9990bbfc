//! The downtime still open at each refreshed station's horizon (what live alerts watch):
//! drained by station code, and kept under the right code when a new context reorders
//! the stations before it is drained.

use stationflow_operators::{synthetic, Emitted, FlowConfig, Now, Outcome, StationFlow};
use stationflow_schemas::signal::{Reading, SignalRecord};

const STOPPED: &str = "ST-00002";

fn record(station: &str, ts: i64, seq: u64, reading: Reading) -> SignalRecord {
    SignalRecord {
        station: station.into(),
        ts,
        seq: Some(seq),
        readings: [reading].into_iter().collect(),
        unknown_keys: 0,
    }
}

/// A flow where one station stops with an error an hour into the first shift and stays
/// stopped for twenty minutes while another keeps running.
fn stopped_flow() -> StationFlow {
    stopped_flow_and_rows(false).0
}

/// `stopped_flow`, told to forgo the downtime underway or not, and what it emitted.
fn stopped_flow_and_rows(forgo_underway: bool) -> (StationFlow, Emitted) {
    let t0 = synthetic::START_MS + 3_600_000;
    let mut flow = StationFlow::new(synthetic::plant(6), FlowConfig::default());
    if forgo_underway {
        flow.forgo_underway();
    }
    let mut records = vec![
        record(STOPPED, t0, 1, Reading::Productive(true)),
        record(STOPPED, t0 + 1_000, 2, Reading::Productive(false)),
        record(
            STOPPED,
            t0 + 1_500,
            3,
            Reading::ErrorCode(Some("E42".into())),
        ),
    ];
    for i in 0..40u64 {
        let ts = t0 + i as i64 * 30_000;
        records.push(record("ST-00003", ts, i + 1, Reading::GoodDelta(1.0)));
        records.push(record(STOPPED, ts + 2_000, i + 4, Reading::Rssi(-50.0)));
    }
    records.sort_by_key(|r| r.ts);
    let mut now = i64::MIN;
    for r in &records {
        now = now.max(r.ts);
        assert_eq!(flow.apply(r, Now(now)), Outcome::Applied, "{r:?}");
    }
    let rows = flow.advance(Now(now));
    (flow, rows)
}

#[test]
fn the_open_stop_is_drained_under_its_station_and_only_once() {
    let mut flow = stopped_flow();
    let underway = flow.drain_underway();
    let open = underway[STOPPED].as_ref().expect("the stop is still open");
    assert_eq!(open.station, STOPPED);
    assert!(open.end > open.start);
    assert!(underway["ST-00003"].is_none(), "{underway:?}");
    assert!(flow.drain_underway().is_empty(), "drained twice");
}

#[test]
fn a_reordered_context_keeps_undrained_spans_under_their_codes() {
    let expected = stopped_flow().drain_underway();
    let mut flow = stopped_flow();
    let mut reordered = synthetic::plant(6);
    reordered.stations.reverse();
    flow.update_context(reordered, i64::MAX);
    assert_eq!(flow.drain_underway(), expected);
}

#[test]
fn a_flow_that_forgoes_the_underway_keeps_none_and_emits_the_same() {
    let (mut kept, kept_rows) = stopped_flow_and_rows(false);
    let (mut forgone, forgone_rows) = stopped_flow_and_rows(true);
    assert!(!kept_rows.windows.is_empty());
    assert_eq!(forgone_rows.windows, kept_rows.windows);
    assert_eq!(forgone_rows.events, kept_rows.events);
    assert!(kept.drain_underway()[STOPPED].is_some());
    assert!(forgone.drain_underway().is_empty());
}
