//! A station whose records came in order for hours keeps few snapshots (two dense
//! minutes, one an hour before them); a record that then comes hours late walks from the
//! snapshot before it and gives the windows of the same records in order.

use std::collections::BTreeMap;

use stationflow_operators::{synthetic, FlowConfig, Now, StationFlow};
use stationflow_schemas::window::StationWindow;
use stationflow_schemas::SignalRecord;

/// The latest revision of each window, by station and minute.
fn latest(windows: Vec<StationWindow>) -> BTreeMap<(String, i64), StationWindow> {
    let mut by_key = BTreeMap::new();
    for w in windows {
        let key = (w.station.to_string(), w.window_start);
        let newer = by_key
            .get(&key)
            .is_none_or(|had: &StationWindow| had.revision < w.revision);
        if newer {
            by_key.insert(key, w);
        }
    }
    by_key
}

/// Feeds `records` one by one, advancing every hundred, then finishes.
fn replay(records: &[SignalRecord]) -> BTreeMap<(String, i64), StationWindow> {
    let mut flow = StationFlow::new(synthetic::plant(2), FlowConfig::default());
    let mut windows = Vec::new();
    let mut now = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        now = now.max(r.ts);
        flow.apply(r, Now(now));
        if i % 100 == 99 {
            windows.extend(flow.advance(Now(now)).windows);
        }
    }
    windows.extend(flow.finish(Now(now)).windows);
    latest(windows)
}

#[test]
fn records_hours_late_after_hours_in_order_give_the_windows_in_order() {
    // Two stations, a record every 20 s each: 5 hours.
    let in_order: Vec<SignalRecord> = synthetic::signals(2, 1_800, 20_000, 3).collect();
    let last = in_order.last().expect("records").ts;
    // Records from 1 h 10 min and 3 h 25 min in, held back to the end.
    let late_at = |r: &SignalRecord| {
        let age = last - r.ts;
        (95..=97).contains(&(age / 60_000)) || (215..=216).contains(&(age / 60_000))
    };
    let (held, on_time): (Vec<_>, Vec<_>) = in_order.iter().cloned().partition(late_at);
    assert!(!held.is_empty());
    let arrived: Vec<SignalRecord> = on_time.into_iter().chain(held).collect();
    let (want, got) = (replay(&in_order), replay(&arrived));
    assert_eq!(want.len(), got.len());
    let revised = got.values().filter(|w| w.revision > 0).count();
    assert!(revised >= 5, "the late records revised {revised} windows");
    for (key, w) in &want {
        let g = &got[key];
        let (mut w, mut g) = (w.clone(), g.clone());
        (w.revision, g.revision, w.emitted_at, g.emitted_at) = (0, 0, 0, 0);
        assert_eq!(w, g, "{key:?}");
    }
}
