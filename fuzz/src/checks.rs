//! The invariants every fuzz target asserts on what the code under test produced.

use stationflow_schemas::context::MAX_CODE_LEN;
use stationflow_schemas::signal::{Reading, SignalRecord, MAX_ERROR_CODE_LEN, MAX_QUANTITY};
use stationflow_schemas::time::TS_LIMIT_MS;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};

/// A decoded record keeps the limits every source shares (SPEC §2, docs/semantics.md).
pub fn check_record(record: &SignalRecord) {
    let station = &record.station;
    assert!(
        !station.is_empty(),
        "a record without a station: {record:?}"
    );
    assert_eq!(station.trim(), station, "an untrimmed station: {record:?}");
    assert!(
        station.len() <= MAX_CODE_LEN,
        "a station of {} bytes",
        station.len()
    );
    assert!(record.ts.unsigned_abs() < TS_LIMIT_MS, "ts {}", record.ts);
    for reading in &record.readings {
        if let Reading::ErrorCode(Some(code)) = reading {
            let len = code.len();
            assert!(len <= MAX_ERROR_CODE_LEN, "an error code of {len} bytes");
        }
        if let Some(value) = reading.quantity() {
            assert!(
                value.is_finite() && value.abs() <= MAX_QUANTITY,
                "{reading:?} in {record:?}"
            );
        }
    }
}

/// A window is one whole minute, every number in it finite, and its times and losses
/// add up (SPEC §4).
pub fn check_window(w: &StationWindow) {
    let at = format!("{} {}", w.station, w.window_start);
    assert_eq!(w.window_start.rem_euclid(60_000), 0, "{at}");
    assert_eq!(w.window_end - w.window_start, 60_000, "{at}");
    for (i, v) in (w.amounts().into_iter())
        .chain(w.optional_amounts().into_iter().flatten())
        .enumerate()
    {
        assert!(v.is_finite(), "{at}: value {i} is {v}: {w:?}");
    }
    for seconds in [w.shift_s, w.planned_s, w.run_s, w.downtime_s, w.no_data_s] {
        assert!((-1e-9..=60.0 + 1e-9).contains(&seconds), "{at}: {w:?}");
    }
    close(
        w.run_s + w.downtime_s,
        w.planned_s,
        60.0,
        &at,
        "run + downtime = planned",
    );
    close(
        w.planned_s + w.planned_stop_s + w.schedule_loss_s,
        w.shift_s,
        60.0,
        &at,
        "planned + planned stop + schedule loss = shift",
    );
    if let (Some(ideal), Some(perf), Some(quality)) =
        (w.ideal_cycle_s, w.performance_loss_s, w.quality_loss_s)
    {
        let made = w.good_qty * ideal;
        let scale = made.abs().max(perf.abs()).max(quality.abs()).max(60.0);
        let lhs = w.downtime_s + perf + quality + made;
        close(lhs, w.planned_s, scale, &at, "the loss identity");
    }
}

fn close(a: f64, b: f64, scale: f64, at: &str, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * scale.max(1.0),
        "{at}: {what} does not hold: {a} vs {b}"
    );
}

/// An event spans a positive time, inside which its downtime lies.
pub fn check_event(e: &DowntimeEvent) {
    assert!(e.end > e.start, "{e:?}");
    assert!(
        e.duration_s.is_finite() && e.downtime_s.is_finite(),
        "{e:?}"
    );
    assert!(e.downtime_s <= e.duration_s + 1e-9, "{e:?}");
    assert!(!e.reason.is_empty(), "{e:?}");
}
