//! Properties of the core (SPEC §4), over generated records: any arrival order within
//! the allowed lateness gives the same latest windows and events; a snapshot/restore
//! anywhere changes nothing; the loss identity holds for every window with an ideal;
//! every record is applied, a duplicate or rejected — exactly once.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stationflow_operators::Emitted;
use stationflow_operators::{FlowConfig, FlowSnapshot, Now, Outcome, StationFlow};
use stationflow_schemas::signal::{Reading, SignalRecord};
use stationflow_schemas::window::StationWindow;
use stationflow_schemas::Context;

const BASE: i64 = 1_772_438_400_000; // 2026-03-02T08:00:00Z, a Monday

const CONTEXT: &str = r#"
[[plants]]
code = "P"
timezone = "Europe/London"
currency = "GBP"

[[stations]]
code = "U"
plant = "P"
shift_pattern = "day"
all_shift_time_planned = true
ideal_cycle_s = 2.0
downtime_threshold_s = 60
stale_after_s = 90
idle_cost_per_minute = 1.0

[[stations]]
code = "C"
plant = "P"
shift_pattern = "day"
downtime_detection = "production_cycle"
stale_after_s = 120

[[stations]]
code = "O"
plant = "P"
downtime_detection = "off"
all_shift_time_planned = true
ideal_cycle_s = 0.5
speed_to_production_ratio = 1.0
stale_after_s = 60

[[skus]]
code = "K1"
ideal_cycle_s = 5.0
unit_value = 0.2
min_cycle_s = 0.5

[[skus]]
code = "K2"
ideal_units_per_min = 20
parts_per_cycle = 2
unit_value = 0.3

[[shifts]]
pattern = "day"
name = "Day"
days = ["Mon"]
start = "08:00"
end = "08:40"
breaks = ["08:20-08:23"]

[[schedule]]
station = "C"
sku = "K1"
start = "2026-03-02T08:00:00Z"
end = "2026-03-02T08:15:00Z"

[[schedule]]
station = "C"
sku = "K2"
start = "2026-03-02T08:15:00Z"
end = "2026-03-02T08:35:00Z"

[[planned_stops]]
plant = "P"
start = "2026-03-02T08:30:00Z"
end = "2026-03-02T08:32:00Z"

[[downtime_causes]]
station = "U"
start = "2026-03-02T08:10:00Z"
end = "2026-03-02T08:12:30Z"
reason = "CHANGEOVER"
"#;

fn context() -> Context {
    Context::from_toml_str(CONTEXT, "properties").expect("valid context")
}

fn reading() -> impl Strategy<Value = Reading> {
    prop_oneof![
        3 => any::<bool>().prop_map(Reading::Productive),
        1 => prop_oneof![Just(None), Just(Some("E1".into())), Just(Some("E2".into()))].prop_map(Reading::ErrorCode),
        4 => (0u32..5).prop_map(|v| Reading::GoodDelta(v as f64)),
        1 => (0u32..400).prop_map(|v| Reading::GoodTotal(v as f64)),
        1 => (0u32..3).prop_map(|v| Reading::BadDelta(v as f64)),
        1 => (0u32..200).prop_map(|v| Reading::LineSpeed(v as f64 / 2.0)),
        1 => (0u32..50).prop_map(|v| Reading::KwhDelta(v as f64 / 10.0)),
        1 => (0u32..1000).prop_map(|v| Reading::KwhTotal(v as f64)),
        1 => (-90i32..-30).prop_map(|v| Reading::Rssi(v as f64)),
    ]
}

/// Records as devices send them: where a record carries `seq`, seqs increase with `ts`
/// per station (two different records never share one).
fn records(max: usize) -> impl Strategy<Value = Vec<SignalRecord>> {
    proptest::collection::vec(record(), 1..max).prop_map(|mut v| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by_key(|&i| v[i].ts);
        let mut next: BTreeMap<String, u64> = BTreeMap::new();
        for i in order {
            if v[i].seq.is_some() {
                let n = next.entry(v[i].station.clone()).or_default();
                v[i].seq = Some(*n);
                *n += 1;
            }
        }
        v
    })
}

fn record() -> impl Strategy<Value = SignalRecord> {
    (
        prop_oneof![Just("U"), Just("C"), Just("O")],
        0i64..2_700_000,
        proptest::option::weighted(0.3, 0u64..40),
        proptest::collection::vec(reading(), 1..3),
    )
        .prop_map(|(station, offset_ms, seq, readings)| SignalRecord {
            station: station.into(),
            // Many records on whole seconds, so that equal timestamps occur.
            ts: BASE
                + if offset_ms % 3 == 0 {
                    offset_ms / 1000 * 1000
                } else {
                    offset_ms
                },
            seq,
            readings: readings.into(),
            unknown_keys: 0,
        })
}

type Latest = BTreeMap<(String, i64), Vec<String>>;

struct Run {
    windows: Latest,
    raw: Vec<StationWindow>,
    events: BTreeMap<(String, i64), Vec<String>>,
}

/// The replay driver's loop: `now` is the largest ts seen, watermarks advance every
/// `every` records, optional snapshot/restore before record `restart_at`.
fn run(records: &[SignalRecord], every: usize, restart_at: Option<usize>) -> (Run, StationFlow) {
    run_with(FlowConfig::default(), records, every, restart_at)
}

fn run_with(
    config: FlowConfig,
    records: &[SignalRecord],
    every: usize,
    restart_at: Option<usize>,
) -> (Run, StationFlow) {
    let mut flow = StationFlow::new(context(), config);
    let mut windows: BTreeMap<(String, i64), StationWindow> = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut now = i64::MIN;
    let collect = |rows: Emitted,
                   windows: &mut BTreeMap<(String, i64), StationWindow>,
                   events: &mut BTreeMap<_, _>| {
        for w in rows.windows {
            windows.insert((w.station.to_string(), w.window_start), w);
        }
        for e in rows.events {
            let cells = e.cells();
            events.insert(
                (e.station.clone(), e.start),
                cells[..cells.len() - 2].to_vec(),
            );
        }
    };
    for (i, r) in records.iter().enumerate() {
        if restart_at == Some(i) {
            let json = serde_json::to_vec(&flow.snapshot()).expect("snapshot");
            let snap: FlowSnapshot = serde_json::from_slice(&json).expect("restore");
            flow = StationFlow::restore(context(), snap).expect("whole");
        }
        now = now.max(r.ts);
        flow.apply(r, Now(now));
        if i % every == every - 1 {
            collect(flow.advance(Now(now)), &mut windows, &mut events);
        }
    }
    collect(flow.advance(Now(now)), &mut windows, &mut events);
    collect(flow.finish(Now(now)), &mut windows, &mut events);
    events.retain(|_, cells: &mut Vec<String>| cells[7] != "retracted");
    let latest = windows
        .iter()
        .map(|(k, w)| {
            let cells = w.cells();
            (k.clone(), cells[..cells.len() - 2].to_vec())
        })
        .collect();
    let raw = windows.into_values().collect();
    (
        Run {
            windows: latest,
            raw,
            events,
        },
        flow,
    )
}

/// Everything a flow emits, in the order it emits it (revisions included): its windows,
/// then its events, and its counters, with watermarks advancing every `every` records.
/// `grouped`: records are admitted in order and inserted station by station before each
/// advance, as the replay driver does; else each is applied as it comes. `rows`: an
/// advance hands its rows over whenever that many windows wait. `runs`: the stations
/// are advanced in that many runs, each into a sink of its own (`advance_into`); the
/// rows are then ordered by station, each station's in the order emitted.
fn emitted(
    records: &[SignalRecord],
    every: usize,
    grouped: bool,
    rows: usize,
    runs: usize,
) -> (Vec<Vec<String>>, String) {
    let mut flow = StationFlow::new(context(), FlowConfig::default());
    let mut sinks = vec![(Vec::new(), Vec::new()); runs];
    let mut batch = Vec::new();
    let mut now = i64::MIN;
    let mut outcomes = Vec::new();
    let drain = |(windows, events): &mut Cells, rows: &mut Emitted| {
        windows.extend(rows.windows.iter().map(StationWindow::cells));
        events.extend(rows.events.iter().map(|e| e.cells()));
        Ok::<(), ()>(())
    };
    for (i, r) in records.iter().enumerate() {
        now = now.max(r.ts);
        if grouped {
            if let Err(reason) = flow.admit(r, Now(now), &mut batch) {
                outcomes.push((i, reason));
            }
        } else if let Outcome::Rejected(reason) = flow.apply(r, Now(now)) {
            outcomes.push((i, reason));
        }
        if i % every == every - 1 {
            flow.insert(&mut batch);
            flow.advance_into(Now(now), rows, &mut sinks, drain)
                .unwrap();
        }
    }
    flow.insert(&mut batch);
    flow.advance_into(Now(now), rows, &mut sinks, drain)
        .unwrap();
    flow.finish_into(Now(now), rows, &mut sinks, drain).unwrap();
    let by_station = |rows: &mut Vec<Vec<String>>| rows.sort_by(|a, b| a[2].cmp(&b[2]));
    let (mut windows, mut events): Cells =
        sinks.into_iter().fold(Default::default(), |mut all, run| {
            all.0.extend(run.0);
            all.1.extend(run.1);
            all
        });
    by_station(&mut windows);
    by_station(&mut events);
    windows.extend(events);
    (windows, format!("{:?} {outcomes:?}", flow.counters()))
}

/// The cells of windows and of downtime events.
type Cells = (Vec<Vec<String>>, Vec<Vec<String>>);

/// The cells that differ, named, for a readable failure.
fn differences(a: &Latest, b: &Latest) -> Vec<String> {
    use stationflow_schemas::window::WINDOW_COLUMNS;
    let mut out = Vec::new();
    for key in a.keys().chain(b.keys()) {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x != y => {
                let cols: Vec<String> = x
                    .iter()
                    .zip(y)
                    .enumerate()
                    .filter(|(_, (p, q))| p != q)
                    .map(|(i, (p, q))| format!("{}: {p:?} vs {q:?}", WINDOW_COLUMNS[i]))
                    .collect();
                out.push(format!("{} {}: {}", key.0, x[3], cols.join(", ")));
            }
            (Some(_), Some(_)) => {}
            _ => out.push(format!("{key:?} only on one side")),
        }
    }
    out.dedup();
    out.truncate(6);
    out
}

/// The records in a random order drawn from `seed` (xorshift steps, Fisher–Yates).
fn shuffle(mut records: Vec<SignalRecord>, seed: proptest::sample::Index) -> Vec<SignalRecord> {
    let mut state = seed.index(usize::MAX) as u64 | 1;
    for i in (1..records.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        records.swap(i, (state % (i as u64 + 1)) as usize);
    }
    records
}

/// The records from the one `at` picks on moved `minutes` later.
fn with_gap(
    mut records: Vec<SignalRecord>,
    at: proptest::sample::Index,
    minutes: i64,
) -> Vec<SignalRecord> {
    let at = at.index(records.len());
    for r in &mut records[at..] {
        r.ts += minutes * 60_000;
    }
    records
}

fn sorted(records: &[SignalRecord]) -> Vec<SignalRecord> {
    let mut v = records.to_vec();
    v.sort_by_key(|r| r.ts);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn arrival_order_does_not_change_latest_windows(
        records in records(120),
        order in any::<proptest::sample::Index>(),
        every in 1usize..9,
    ) {
        let in_order = sorted(&records);
        let (expected, _) = run(&in_order, 5, None);
        // A random permutation of the same records (all within the 24 h lateness).
        let shuffled = shuffle(records.clone(), order);
        let (actual, _) = run(&shuffled, every, None);
        let diff = differences(&expected.windows, &actual.windows);
        prop_assert!(diff.is_empty(), "in order vs shuffled:\n{}", diff.join("\n"));
        prop_assert_eq!(&expected.events, &actual.events);
    }

    #[test]
    fn inserting_station_by_station_between_advances_changes_nothing(
        records in records(120),
        order in any::<proptest::sample::Index>(),
        repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
        every in 1usize..40,
    ) {
        // Out of order, with duplicates: late records, revisions and rejections happen.
        let mut all = records.clone();
        for r in &repeats {
            all.push(records[r.index(records.len())].clone());
        }
        let shuffled = shuffle(all, order);
        let (in_order, counted) = emitted(&shuffled, every, false, usize::MAX, 1);
        let (grouped, counted_grouped) = emitted(&shuffled, every, true, usize::MAX, 1);
        prop_assert_eq!(counted, counted_grouped);
        prop_assert_eq!(in_order, grouped);
    }

    #[test]
    fn handing_rows_over_during_an_advance_changes_nothing(
        records in records(120),
        gap_at in any::<proptest::sample::Index>(),
        gap_minutes in 0i64..600,
        every in 1usize..40,
        rows in 1usize..4,
    ) {
        // Records after `gap_at` come hours later: every station's watermark jumps.
        let records = with_gap(records, gap_at, gap_minutes);
        let (whole, counted) = emitted(&records, every, true, usize::MAX, 1);
        let (handed_over, counted_handed_over) = emitted(&records, every, true, rows, 1);
        prop_assert_eq!(counted, counted_handed_over);
        prop_assert_eq!(whole, handed_over);
    }

    #[test]
    fn advancing_stations_in_runs_on_threads_changes_nothing(
        records in records(120),
        order in any::<proptest::sample::Index>(),
        gap_at in any::<proptest::sample::Index>(),
        gap_minutes in 0i64..600,
        every in 1usize..40,
        rows in 1usize..4,
        runs in 2usize..5,
    ) {
        // Out of order and with a jump of the watermarks: revisions, drains mid-advance.
        let records = with_gap(shuffle(records, order), gap_at, gap_minutes);
        let (one, counted) = emitted(&records, every, true, rows, 1);
        let (split, counted_split) = emitted(&records, every, true, rows, runs);
        prop_assert_eq!(counted, counted_split);
        prop_assert_eq!(one, split);
    }

    #[test]
    fn refreshing_a_long_jump_in_steps_keeps_the_latest_windows(
        records in records(120),
        gap_at in any::<proptest::sample::Index>(),
        gap_minutes in 0i64..1_400,
        every in 1usize..40,
        step_minutes in 1i64..90,
    ) {
        // Records after `gap_at` come up to 23 hours later (inside the allowed lateness:
        // docs/semantics.md, "Long jumps of the watermarks", says what differs beyond
        // it): quiet stations and then every station's watermark jump past the step.
        let records = with_gap(sorted(&records), gap_at, gap_minutes);
        let whole = FlowConfig { max_refresh_ms: i64::MAX, ..FlowConfig::default() };
        let steps = FlowConfig { max_refresh_ms: step_minutes * 60_000, ..FlowConfig::default() };
        let (expected, _) = run_with(whole, &records, every, None);
        let (actual, _) = run_with(steps, &records, every, None);
        let diff = differences(&expected.windows, &actual.windows);
        prop_assert!(diff.is_empty(), "whole vs in steps:\n{}", diff.join("\n"));
        prop_assert_eq!(expected.events, actual.events);
    }

    #[test]
    fn snapshot_and_restore_anywhere_changes_nothing(
        records in records(80),
        at in any::<proptest::sample::Index>(),
    ) {
        let records = sorted(&records);
        let (expected, _) = run(&records, 3, None);
        let (actual, _) = run(&records, 3, Some(at.index(records.len())));
        let diff = differences(&expected.windows, &actual.windows);
        prop_assert!(diff.is_empty(), "straight vs restored:\n{}", diff.join("\n"));
        prop_assert_eq!(expected.events, actual.events);
    }

    #[test]
    fn loss_identity_holds_for_every_window_with_an_ideal(records in records(120)) {
        let (result, _) = run(&sorted(&records), 4, None);
        let mut checked = 0;
        for w in &result.raw {
            let (Some(ideal), Some(perf), Some(quality)) = (w.ideal_cycle_s, w.performance_loss_s, w.quality_loss_s) else { continue };
            // Changeovers inside a minute sum per part; every ideal here changes on a minute.
            let lhs = w.downtime_s + perf + quality + w.good_qty * ideal;
            prop_assert!((lhs - w.planned_s).abs() < 1e-6, "{} {}: {lhs} != {}", w.station, w.window_start, w.planned_s);
            prop_assert!((w.run_s + w.downtime_s - w.planned_s).abs() < 1e-9);
            prop_assert!((w.shift_s - w.planned_s - w.planned_stop_s - w.schedule_loss_s).abs() < 1e-9);
            checked += 1;
        }
        for w in &result.raw {
            for v in [w.availability, w.performance, w.quality, w.oee, w.utilisation, w.cycle_time_avg, w.kwh_per_unit] {
                prop_assert!(v.is_none_or(f64::is_finite));
            }
        }
        prop_assert!(checked > 0 || records.is_empty());
    }

    #[test]
    fn every_record_is_accounted_for_exactly_once(
        records in records(100),
        repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
        strangers in 0usize..5,
    ) {
        let mut all = records.clone();
        for r in &repeats {
            all.push(records[r.index(records.len())].clone());
        }
        for i in 0..strangers {
            let mut r = records[0].clone();
            r.station = format!("UNKNOWN-{i}");
            all.push(r);
        }
        let (_, flow) = run(&all, 6, None);
        let c = flow.counters();
        prop_assert_eq!(c.records_in, all.len() as u64);
        prop_assert_eq!(c.records_in, c.applied + c.duplicates + c.rejected_total());
        prop_assert!(c.duplicates >= repeats.len() as u64);
        prop_assert_eq!(c.rejected.values().sum::<u64>(), strangers as u64);
    }
}
