//! Every golden case of the operators, through the binary: the latest windows in the
//! Parquet dataset match the case's expected.csv (the same core, driven by the replay
//! driver on three threads, written and read back).

use std::collections::BTreeMap;
use std::fs;

use crate::common::{assert_rows_match, number, query, reference_rollup, replay_with, workspace};

const COLUMNS: [&str; 12] = [
    "planned_s",
    "run_s",
    "downtime_s",
    "no_data_s",
    "shift_s",
    "good_qty",
    "reject_qty",
    "ideal_qty",
    "planned_stop_s",
    "productive_s",
    "event_count",
    "loss_cost",
];

#[test]
fn golden_cases_match_through_replay_and_query() {
    let root = workspace().join("operators/tests/golden");
    let mut checked = 0;
    for entry in fs::read_dir(&root).expect("golden cases") {
        let dir = entry.expect("entry").path();
        let case = fs::read_to_string(dir.join("case.toml")).unwrap_or_default();
        // Cases with context updates or their own flow settings need the operator runner.
        if case.contains("context_updates")
            || case.contains("[config]")
            || !dir.join("expected.csv").exists()
        {
            continue;
        }
        let out = tempfile::tempdir().expect("tempdir");
        // Three threads: the stations of a case of several each on a thread of its own.
        replay_with(
            &[&dir.join("signals.jsonl")],
            &dir.join("context.toml"),
            out.path(),
            &["--threads", "3"],
        );
        // The roll-ups over the case's sums equal the roll-up of its latest windows (the
        // two with the grain's every column: shift and SKU).
        let rollups = stationflow_engine::query::ROLLUPS;
        for (name, keys, _) in [rollups[0], rollups[4]] {
            let got = query(out.path(), &format!("SELECT * FROM {name} ORDER BY {keys}"));
            let reference = reference_rollup(keys);
            let want = query(out.path(), &format!("{reference} ORDER BY {keys}"));
            assert_rows_match(&got, &want, &format!("{}: {name}", dir.display()));
        }
        let cols = COLUMNS.join(", ");
        let rows = query(
            out.path(),
            &format!("SELECT station, CAST(window_start AS BIGINT) AS ws, {cols} FROM station_windows_latest ORDER BY station, ws"),
        );
        let mut expected = csv::Reader::from_path(dir.join("expected.csv")).expect("expected.csv");
        let header = expected.headers().expect("header").clone();
        let idx = |name: &str| header.iter().position(|h| h == name).expect("column");
        let expected: Vec<csv::StringRecord> =
            expected.records().map(|r| r.expect("row")).collect();
        assert_eq!(
            rows.len() - 1,
            expected.len(),
            "{}: number of windows",
            dir.display()
        );
        let mut by_key = BTreeMap::new();
        for r in &rows[1..] {
            by_key.insert((r[0].clone(), r[1].parse::<i64>().expect("ms")), r.clone());
        }
        for e in &expected {
            let start =
                stationflow_schemas::time::parse_rfc3339_ms(&e[idx("window_start")]).expect("ts");
            let got = &by_key[&(e[idx("station")].to_string(), start)];
            for (j, c) in COLUMNS.iter().enumerate() {
                let (want, have) = (number(&e[idx(c)]), number(&got[j + 2]));
                let same = (want.is_nan() && have.is_nan()) || (want - have).abs() < 1e-5;
                assert!(
                    same,
                    "{} {} {start} {c}: expected {want}, got {have}",
                    dir.display(),
                    &e[idx("station")]
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} golden cases ran through the binary"
    );
}
