//! Golden replay cases: each folder under `tests/golden/` holds `signals.jsonl` (in
//! arrival order), `context.toml`, `expected.csv` (the latest revision of every window),
//! optionally `expected_events.csv` and `case.toml` (flow settings, hand-computed sums
//! and outcome counts). Every case runs three ways — straight through; snapshotted,
//! dropped and restored halfway; arrival shuffled within the allowed lateness — and all
//! three must match. `UPDATE_GOLDEN=1` rewrites the expected files for review.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stationflow_operators::{Emitted, FlowConfig, FlowSnapshot, Now, StationFlow};
use stationflow_schemas::signal::{decode_json, SignalRecord};
use stationflow_schemas::window::{DowntimeEvent, StationWindow, EVENT_COLUMNS, WINDOW_COLUMNS};
use stationflow_schemas::{Context, RejectReason};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case shows and the arithmetic behind its sums, for the reader.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    config: FlowConfig,
    /// Run the shuffled arrival too (off for cases that test `too_late`).
    #[serde(default = "yes")]
    shuffle: bool,
    /// Records applied, duplicates, debounced completions, rejections by reason.
    #[serde(default)]
    outcomes: BTreeMap<String, u64>,
    /// Hand-computed totals over a station's latest windows.
    #[serde(default)]
    sums: Vec<BTreeMap<String, toml::Value>>,
    /// Hand-computed cells of single windows: `station`, `window_start`, then columns.
    #[serde(default)]
    rows: Vec<BTreeMap<String, toml::Value>>,
    /// Context replaced after `after` input records, dated `changed_from`.
    #[serde(default)]
    context_updates: Vec<ContextUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextUpdate {
    after: usize,
    file: String,
    changed_from: String,
}

struct Scenario {
    context: Context,
    config: FlowConfig,
    /// (input index, context, changed_from ms)
    updates: Vec<(usize, Context, i64)>,
}

fn yes() -> bool {
    true
}

enum Input {
    Record(SignalRecord),
    Rejected(RejectReason),
}

struct RunResult {
    windows: BTreeMap<(String, i64), StationWindow>,
    events: BTreeMap<(String, i64), DowntimeEvent>,
    outcomes: BTreeMap<String, u64>,
}

fn load_inputs(dir: &Path) -> Vec<Input> {
    let text = fs::read_to_string(dir.join("signals.jsonl")).expect("signals.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match decode_json(line.as_bytes(), None, None) {
            Ok(r) => Input::Record(r),
            Err(e) => Input::Rejected(e.reason),
        })
        .collect()
}

/// Drives a flow over inputs as the replay driver does: `now` is the largest event time
/// seen; records admitted into a batch go in before every advance, context change and
/// snapshot; watermarks advance every few records. `restart_at`: snapshot, drop, restore.
fn run(sc: &Scenario, inputs: &[&Input], restart_at: Option<usize>) -> RunResult {
    let mut context = sc.context.clone();
    let mut flow = StationFlow::new(context.clone(), sc.config.clone());
    let mut windows = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut now = i64::MIN;
    let mut batch = Vec::new();
    let mut collect = |rows: Emitted| {
        for w in rows.windows {
            let key = (w.station.to_string(), w.window_start);
            if let Some(prev) = windows.get(&key) {
                let prev: &StationWindow = prev;
                assert_eq!(
                    w.revision,
                    prev.revision + 1,
                    "revisions of {key:?} go up by one"
                );
            } else {
                assert_eq!(w.revision, 0, "first emission of {key:?} is revision 0");
            }
            windows.insert(key, w);
        }
        for e in rows.events {
            events.insert((e.station.clone(), e.start), e);
        }
    };
    for (i, input) in inputs.iter().enumerate() {
        for (_, ctx, from) in sc.updates.iter().filter(|(at, _, _)| *at == i) {
            context = ctx.clone();
            flow.insert(&mut batch);
            flow.update_context(context.clone(), *from);
        }
        if restart_at == Some(i) {
            flow.insert(&mut batch);
            let json = serde_json::to_string(&flow.snapshot()).expect("snapshot serialises");
            drop(flow);
            let snapshot: FlowSnapshot =
                serde_json::from_str(&json).expect("snapshot deserialises");
            flow = StationFlow::restore(context.clone(), snapshot).expect("whole");
        }
        match input {
            Input::Record(r) => {
                now = now.max(r.ts);
                let admitted = flow.admit(r, Now(now), &mut batch);
                assert_ne!(admitted, Err(RejectReason::FutureTs));
            }
            Input::Rejected(reason) => flow.count_undecodable(*reason),
        }
        if i % 7 == 6 {
            flow.insert(&mut batch);
            collect(flow.advance(Now(now)));
        }
    }
    flow.insert(&mut batch);
    for (_, ctx, from) in sc.updates.iter().filter(|(at, _, _)| *at >= inputs.len()) {
        flow.update_context(ctx.clone(), *from);
    }
    collect(flow.advance(Now(now)));
    collect(flow.finish(Now(now)));
    let c = flow.counters().clone();
    assert_eq!(
        c.records_in,
        c.applied + c.duplicates + c.rejected_total(),
        "every record accounted for once"
    );
    let mut outcomes = BTreeMap::new();
    outcomes.insert("applied".into(), c.applied);
    outcomes.insert("duplicate".into(), c.duplicates);
    outcomes.insert("debounced".into(), flow.debounced());
    for (reason, n) in c.rejected {
        outcomes.insert(reason.as_str().into(), n);
    }
    RunResult {
        windows,
        events,
        outcomes,
    }
}

/// A deterministic shuffle that keeps every record within half the allowed lateness
/// of the records around it, so none becomes too late.
fn shuffled<'a>(inputs: &'a [Input], lateness_ms: i64) -> Vec<&'a Input> {
    let ts = |i: &Input| match i {
        Input::Record(r) => r.ts,
        Input::Rejected(_) => i64::MIN,
    };
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by_key(|i| ts(i));
    let mut out = Vec::with_capacity(sorted.len());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut block: Vec<&Input> = Vec::new();
    let mut block_start = i64::MIN;
    let flush = |block: &mut Vec<&'a Input>, out: &mut Vec<&'a Input>, seed: &mut u64| {
        for i in (1..block.len()).rev() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            block.swap(i, (*seed % (i as u64 + 1)) as usize);
        }
        out.append(block);
    };
    for input in sorted {
        let t = ts(input);
        if t != i64::MIN && t.saturating_sub(block_start) > lateness_ms / 2 {
            flush(&mut block, &mut out, &mut seed);
            block_start = t;
        }
        block.push(input);
    }
    flush(&mut block, &mut out, &mut seed);
    out
}

/// Rows as CSV under `columns`, leaving out the last two (revision and emission time
/// depend on arrival order).
fn rows_csv<'a>(columns: &[&str], rows: impl Iterator<Item = Vec<String>> + 'a) -> String {
    let keep = columns.len() - 2;
    let mut out = columns[..keep].join(",") + "\n";
    for cells in rows {
        out += &cells[..keep]
            .iter()
            .map(|c| csv_cell(c))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
    }
    out
}

fn window_csv(windows: &BTreeMap<(String, i64), StationWindow>) -> String {
    rows_csv(&WINDOW_COLUMNS, windows.values().map(StationWindow::cells))
}

fn event_csv(events: &BTreeMap<(String, i64), DowntimeEvent>) -> String {
    rows_csv(
        &EVENT_COLUMNS,
        events
            .values()
            .filter(|e| e.reason != "retracted")
            .map(DowntimeEvent::cells),
    )
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            let header: Vec<&str> = expected.lines().next().unwrap_or("").split(',').collect();
            let cols: Vec<String> = e
                .split(',')
                .zip(a.split(','))
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .map(|(j, (x, y))| {
                    format!(
                        "{}: expected {x:?}, got {y:?}",
                        header.get(j).unwrap_or(&"?")
                    )
                })
                .collect();
            return format!("line {}: {}", i + 1, cols.join("; "));
        }
    }
    format!(
        "{} expected lines, {} actual",
        expected.lines().count(),
        actual.lines().count()
    )
}

fn check_sums(case: &Case, windows: &BTreeMap<(String, i64), StationWindow>) -> Vec<String> {
    let mut errors = Vec::new();
    for sum in &case.sums {
        let station = sum
            .get("station")
            .and_then(|v| v.as_str())
            .expect("sums need a station");
        let rows: Vec<Vec<String>> = windows
            .values()
            .filter(|w| &*w.station == station)
            .map(|w| w.cells())
            .collect();
        for (column, expected) in sum.iter().filter(|(k, _)| k.as_str() != "station") {
            let expected = expected
                .as_float()
                .or(expected.as_integer().map(|i| i as f64))
                .expect("numeric sum");
            let j = WINDOW_COLUMNS
                .iter()
                .position(|c| c == column)
                .unwrap_or_else(|| panic!("no column {column}"));
            let actual: f64 = rows.iter().filter_map(|r| r[j].parse::<f64>().ok()).sum();
            if (actual - expected).abs() > 1e-6 {
                errors.push(format!(
                    "sum of {column} for {station}: expected {expected}, got {actual}"
                ));
            }
        }
    }
    errors
}

fn check_rows(case: &Case, windows: &BTreeMap<(String, i64), StationWindow>) -> Vec<String> {
    let mut errors = Vec::new();
    for row in &case.rows {
        let get = |k: &str| {
            row.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("rows need {k}"))
        };
        let (station, start) = (get("station"), get("window_start"));
        let ts = stationflow_schemas::time::parse_rfc3339_ms(start).expect("window_start");
        let Some(w) = windows.get(&(station.to_string(), ts)) else {
            errors.push(format!("no window {station} {start}"));
            continue;
        };
        let cells = w.cells();
        for (column, expected) in row
            .iter()
            .filter(|(k, _)| !["station", "window_start"].contains(&k.as_str()))
        {
            let j = WINDOW_COLUMNS
                .iter()
                .position(|c| c == column)
                .unwrap_or_else(|| panic!("no column {column}"));
            let expected = match expected {
                toml::Value::String(s) => s.clone(),
                toml::Value::Float(f) => stationflow_schemas::window::format_f64(*f),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => other.to_string(),
            };
            if cells[j] != expected {
                errors.push(format!(
                    "{station} {start} {column}: expected {expected:?}, got {:?}",
                    cells[j]
                ));
            }
        }
    }
    errors
}

fn run_case(dir: &Path) -> Vec<String> {
    let load_context = |name: &str| {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        Context::from_toml_str(&text, name).unwrap_or_else(|e| panic!("{e}"))
    };
    let case: Case = fs::read_to_string(dir.join("case.toml"))
        .map(|t| toml::from_str(&t).expect("valid case.toml"))
        .unwrap_or_default();
    let sc = Scenario {
        context: load_context("context.toml"),
        config: case.config.clone(),
        updates: case
            .context_updates
            .iter()
            .map(|u| {
                let from = stationflow_schemas::time::parse_rfc3339_ms(&u.changed_from)
                    .expect("changed_from");
                (u.after, load_context(&u.file), from)
            })
            .collect(),
    };
    let inputs = load_inputs(dir);
    let in_order: Vec<&Input> = inputs.iter().collect();
    let straight = run(&sc, &in_order, None);
    let actual = window_csv(&straight.windows);
    let actual_events = event_csv(&straight.events);
    let expected_path = dir.join("expected.csv");
    let events_path = dir.join("expected_events.csv");
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        fs::write(&expected_path, &actual).expect("write expected.csv");
        fs::write(&events_path, &actual_events).expect("write expected_events.csv");
    }
    let mut errors = Vec::new();
    let expected = fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        errors.push(format!(
            "straight: windows differ from expected.csv at {}",
            first_difference(&expected, &actual)
        ));
    }
    if let Ok(expected) = fs::read_to_string(&events_path) {
        if expected != actual_events {
            errors.push(format!(
                "straight: events differ at {}",
                first_difference(&expected, &actual_events)
            ));
        }
    }
    errors.extend(check_sums(&case, &straight.windows));
    for (key, n) in &case.outcomes {
        let got = straight.outcomes.get(key).copied().unwrap_or(0);
        if got != *n {
            errors.push(format!("outcome {key}: expected {n}, got {got}"));
        }
    }
    errors.extend(check_rows(&case, &straight.windows));
    let restarted = run(&sc, &in_order, Some(inputs.len() / 2));
    if window_csv(&restarted.windows) != actual || event_csv(&restarted.events) != actual_events {
        errors.push(format!(
            "snapshot/restore: differs from straight at {}",
            first_difference(&actual, &window_csv(&restarted.windows))
        ));
    }
    if case.shuffle {
        let order = shuffled(&inputs, case.config.allowed_lateness_ms);
        let shuffled_run = run(&sc, &order, None);
        let w = window_csv(&shuffled_run.windows);
        if w != actual {
            errors.push(format!(
                "shuffled: windows differ from straight at {}",
                first_difference(&actual, &w)
            ));
        }
        let e = event_csv(&shuffled_run.events);
        if e != actual_events {
            errors.push(format!(
                "shuffled: events differ at {}",
                first_difference(&actual_events, &e)
            ));
        }
    }
    errors
}

#[test]
fn golden_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("signals.jsonl").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no golden cases found");
    let only = std::env::var("GOLDEN_CASE").ok();
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        for e in run_case(&dir) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases failed:\n{}",
        failures.join("\n")
    );
}
