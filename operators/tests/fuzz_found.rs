//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) found to break an invariant, kept
//! as plain tests so the fix stays in CI. Each names its target and what broke.

use stationflow_operators::{synthetic, FlowConfig, Now, StationFlow};
use stationflow_schemas::signal::{Reading, SignalRecord};
use stationflow_schemas::window::StationWindow;

fn record(station: &str, ts: i64, readings: Vec<Reading>) -> SignalRecord {
    SignalRecord {
        station: station.into(),
        ts,
        seq: None,
        readings: readings.into(),
        unknown_keys: 0,
    }
}

/// Every window of a replay-like run of `records` (sorted by ts), on the synthetic plant.
fn windows(records: &[SignalRecord]) -> Vec<StationWindow> {
    let mut flow = StationFlow::new(synthetic::plant(2), FlowConfig::default());
    let last = records
        .iter()
        .map(|r| r.ts)
        .max()
        .unwrap_or(synthetic::START_MS);
    flow.set_wall_clock(last);
    for r in records {
        flow.apply(r, Now(r.ts));
    }
    let mut windows = flow.advance(Now(last)).windows;
    windows.extend(flow.finish(Now(last)).windows);
    windows
}

/// `station_flow`: a tiny good quantity (any finite value a decoder accepts) under a
/// large energy reading made `kwh_per_unit` infinite.
#[test]
fn ratios_beyond_f64_are_none_not_infinite() {
    let t0 = synthetic::START_MS;
    let station = "ST-00000";
    let records = [
        record(station, t0, vec![Reading::Productive(true)]),
        record(
            station,
            t0 + 10_000,
            vec![Reading::GoodDelta(1e-300), Reading::KwhDelta(1e15)],
        ),
        record(station, t0 + 20_000, vec![Reading::GoodDelta(5e-324)]),
        record(station, t0 + 130_000, vec![Reading::GoodDelta(1.0)]),
    ];
    let windows = windows(&records);
    let first = windows
        .iter()
        .find(|w| &*w.station == station && w.window_start == t0)
        .expect("the first minute's window");
    assert_eq!(first.kwh_per_unit, None, "{first:?}");
    for w in &windows {
        for v in [
            w.kwh_per_unit,
            w.cycle_time_avg,
            w.performance,
            w.oee,
            w.quality,
        ] {
            assert!(v.is_none_or(f64::is_finite), "{w:?}");
        }
    }
}
