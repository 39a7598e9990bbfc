//! Time that cannot be true is rejected, and a rejected record changes nothing: no
//! window, no watermark, no station's extent (docs/semantics.md, "Plausible time").
//! So are records past the core's limits: a clock that stands still, invented codes.

use proptest::prelude::*;
use stationflow_operators::{
    synthetic, Emitted, FlowConfig, Now, Outcome, StationFlow, LATEST_TS_MS, MAX_ERROR_CODES,
    MAX_NEW_ERROR_CODES_PER_STATION, MAX_RECORDS_AT_ONE_INSTANT,
};
use stationflow_schemas::signal::{Reading, SignalRecord};
use stationflow_schemas::time::parse_rfc3339_ms;
use stationflow_schemas::window::StationWindow;
use stationflow_schemas::RejectReason;

const HOUR: i64 = 3_600_000;

fn record(station: &str, ts: i64, reading: Reading) -> SignalRecord {
    SignalRecord {
        station: station.into(),
        ts,
        seq: None,
        readings: [reading].into_iter().collect(),
        unknown_keys: 0,
    }
}

/// Two hours of four stations, a record a station-minute.
fn clean() -> Vec<SignalRecord> {
    let mut out = Vec::new();
    for minute in 0..120 {
        for s in 0..4 {
            let ts = synthetic::START_MS + minute * 60_000 + s * 7_000;
            let station = format!("ST-{s:05}");
            let reading = if minute % 9 == 0 {
                Reading::Productive(minute % 18 == 0)
            } else {
                Reading::GoodDelta(1.0)
            };
            out.push(record(&station, ts, reading));
        }
    }
    out
}

/// The latest revision of every window, `emitted_at` aside, after a replay-like run
/// (advances every 64 records, "now" the largest ts) with the wall clock at `wall`.
fn run(records: &[SignalRecord], wall: i64) -> (Vec<StationWindow>, Vec<Outcome>) {
    let mut flow = StationFlow::new(synthetic::plant(4), FlowConfig::default());
    flow.set_wall_clock(wall);
    let mut latest = std::collections::BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut now = i64::MIN;
    let mut keep = |rows: Emitted| {
        for mut w in rows.windows {
            w.emitted_at = 0;
            w.revision = 0;
            latest.insert((w.station.to_string(), w.window_start), w);
        }
    };
    for (i, r) in records.iter().enumerate() {
        // As the replay driver does: "now" moves only with a record that went in.
        let outcome = flow.apply(r, Now(now.max(r.ts)));
        if !matches!(outcome, Outcome::Rejected(_)) {
            now = now.max(r.ts);
        }
        outcomes.push(outcome);
        if i % 64 == 63 {
            keep(flow.advance(Now(now)));
        }
    }
    keep(flow.advance(Now(now)));
    keep(flow.finish(Now(now)));
    let c = flow.counters();
    assert_eq!(c.records_in, c.applied + c.duplicates + c.rejected_total());
    (latest.into_values().collect(), outcomes)
}

fn wall() -> i64 {
    parse_rfc3339_ms("2026-12-06T12:00:00Z").unwrap()
}

fn strays() -> Vec<(i64, RejectReason)> {
    let wall = wall();
    vec![
        (0, RejectReason::BadTs),
        (1_777_870_800, RejectReason::BadTs), // epoch seconds sent as milliseconds
        (-253_402_300_799_999, RejectReason::BadTs),
        (i64::MIN, RejectReason::BadTs),
        (
            parse_rfc3339_ms("2000-01-01T00:00:00Z").unwrap(),
            RejectReason::BadTs,
        ),
        (wall + 5 * 60_000 + 1, RejectReason::FutureTs),
        (LATEST_TS_MS, RejectReason::FutureTs),
        (i64::MAX, RejectReason::FutureTs),
        (synthetic::START_MS - 30 * HOUR, RejectReason::TooLate),
    ]
}

#[test]
fn a_stray_record_anywhere_changes_no_window() {
    let clean_records = clean();
    let (expected, _) = run(&clean_records, wall());
    assert_eq!(expected.len(), 4 * 120);
    for (ts, reason) in strays() {
        for at in [0, 1, 200, clean_records.len()] {
            if reason == RejectReason::TooLate && at < 200 {
                continue; // before any advance, 30 h early is not yet too late
            }
            let mut records = clean_records.clone();
            records.insert(at, record("ST-00001", ts, Reading::Productive(true)));
            let (windows, outcomes) = run(&records, wall());
            assert_eq!(outcomes[at], Outcome::Rejected(reason), "ts {ts} at {at}");
            assert!(windows == expected, "ts {ts} at {at} changed the windows");
        }
    }
}

#[test]
fn a_station_is_bounded_by_its_first_valid_from() {
    let mut context = synthetic::plant(2);
    let from = synthetic::START_MS + HOUR;
    for s in &mut context.stations {
        if s.code == "ST-00001" {
            s.valid_from = Some(stationflow_schemas::context::Ts(from));
        }
    }
    let mut flow = StationFlow::new(context, FlowConfig::default());
    let before = record("ST-00001", from - 1, Reading::Productive(true));
    assert_eq!(
        flow.apply(&before, Now(from)),
        Outcome::Rejected(RejectReason::BadTs)
    );
    let other = record("ST-00000", from - 1, Reading::Productive(true));
    assert_eq!(flow.apply(&other, Now(from)), Outcome::Applied);
    let at = record("ST-00001", from, Reading::Productive(true));
    assert_eq!(flow.apply(&at, Now(from)), Outcome::Applied);
}

#[test]
fn the_floor_is_configurable() {
    let config = FlowConfig {
        earliest_ts_ms: 0,
        ..FlowConfig::default()
    };
    let mut flow = StationFlow::new(synthetic::plant(1), config);
    let old = record("ST-00000", 86_400_000, Reading::Productive(true));
    assert_eq!(flow.apply(&old, Now(86_400_000)), Outcome::Applied);
    let older = record("ST-00000", -1, Reading::Productive(true));
    assert_eq!(
        flow.apply(&older, Now(86_400_000)),
        Outcome::Rejected(RejectReason::BadTs)
    );
}

/// A clock that stands still sends every record at its last time: past
/// `MAX_RECORDS_AT_ONE_INSTANT` in a row, the station's records are `too_large`, so the
/// run costs no more than that many (each is sorted among the others at its instant).
/// A record at another instant ends the run.
#[test]
fn a_clock_that_stands_still_is_cut_off() {
    let stuck = synthetic::START_MS + 30_000;
    let cap = MAX_RECORDS_AT_ONE_INSTANT as usize;
    let mut records = vec![record("ST-00000", stuck - 1_000, Reading::Productive(true))];
    for i in 0..3 * cap {
        records.push(record("ST-00000", stuck, Reading::GoodTotal(i as f64)));
        // Another station's records do not end the run.
        records.push(record("ST-00001", stuck, Reading::GoodTotal(i as f64)));
    }
    records.push(record("ST-00000", stuck, Reading::GoodTotal(0.0)));
    records.push(record("ST-00000", stuck + 1, Reading::Productive(true)));
    records.push(record("ST-00000", stuck, Reading::GoodTotal(1e6)));
    let (windows, outcomes) = run(&records, wall());
    let of = |station: &str| -> Vec<Outcome> {
        records
            .iter()
            .zip(&outcomes)
            .filter(|(r, _)| r.station == station)
            .map(|(_, o)| *o)
            .collect()
    };
    let first = of("ST-00000");
    let applied = first.iter().filter(|o| **o == Outcome::Applied).count();
    let too_large = Outcome::Rejected(RejectReason::TooLarge);
    assert_eq!(
        applied,
        1 + cap + 2,
        "the run's first {cap}, and the records after it"
    );
    assert!(first[1 + cap..1 + 3 * cap + 1]
        .iter()
        .all(|o| *o == too_large));
    assert_eq!(
        of("ST-00001")
            .iter()
            .filter(|o| **o == Outcome::Applied)
            .count(),
        cap
    );
    let minute = windows
        .iter()
        .find(|w| &*w.station == "ST-00000" && w.window_start == synthetic::START_MS)
        .expect("the stuck minute's window");
    assert_eq!(minute.event_count, 1 + cap as i64 + 2);
    let detail = StationFlow::rejection_detail(RejectReason::TooLarge);
    assert!(detail.contains(&cap.to_string()), "{detail}");
}

/// A device that puts a counter into its error code would have every code interned for
/// good: past 1,024 new codes a station's records with another new one are `bad_value`,
/// codes already known still go in, and other stations are not affected; past 100,000
/// codes in all, any new one is refused.
#[test]
fn error_codes_a_station_invents_are_bounded() {
    let per_station = MAX_NEW_ERROR_CODES_PER_STATION as usize;
    let stations = MAX_ERROR_CODES / per_station + 2;
    let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
    flow.set_wall_clock(wall());
    let t0 = synthetic::START_MS;
    let code = |s: usize, i: usize| Reading::ErrorCode(Some(format!("E-{s}-{i}").into()));
    let mut apply = |s: usize, i: usize, reading: Reading| {
        let r = record(&format!("ST-{s:05}"), t0 + i as i64 * 1_000, reading);
        flow.apply(&r, Now(r.ts))
    };
    let bad = Outcome::Rejected(RejectReason::BadValue);
    for i in 0..per_station {
        assert_eq!(apply(0, i, code(0, i)), Outcome::Applied, "code {i}");
    }
    assert_eq!(apply(0, per_station, code(0, per_station)), bad);
    assert_eq!(apply(0, per_station + 1, code(0, 7)), Outcome::Applied);
    assert_eq!(apply(1, 0, code(1, 0)), Outcome::Applied);
    let mut outcomes = Vec::new();
    for s in 1..stations {
        for i in 1..per_station {
            outcomes.push(apply(s, i, code(s, i)));
        }
    }
    let applied = outcomes.iter().filter(|o| **o == Outcome::Applied).count();
    assert_eq!(applied + per_station + 1, MAX_ERROR_CODES);
    assert!(outcomes[applied..].iter().all(|o| *o == bad));
    let detail = StationFlow::rejection_detail(RejectReason::BadValue);
    assert!(detail.contains(&per_station.to_string()), "{detail}");
    assert!(detail.contains(&MAX_ERROR_CODES.to_string()), "{detail}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever its time, a stray record is applied or rejected, and when rejected the
    /// windows are the clean run's.
    #[test]
    fn any_rejected_record_leaves_the_windows_alone(
        ts in prop_oneof![any::<i64>(), -10_000_000_000_000i64..10_000_000_000_000i64],
        at in 0usize..480,
    ) {
        let clean_records = clean();
        let (expected, _) = run(&clean_records, wall());
        let mut records = clean_records;
        records.insert(at, record("ST-00002", ts, Reading::Productive(false)));
        let (windows, outcomes) = run(&records, wall());
        if let Outcome::Rejected(_) = outcomes[at] {
            prop_assert!(windows == expected);
        }
    }
}
