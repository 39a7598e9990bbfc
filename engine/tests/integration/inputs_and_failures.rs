//! The three input formats give the same windows; bad input is dead-lettered with its
//! reason and source; a failing run says what and where and exits non-zero.

use std::fs;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;

use crate::common::{ok, query, replay, stationflow, workspace};

const CONTEXT: &str = r#"
[[plants]]
code = "P1"
timezone = "Europe/Paris"
currency = "EUR"

[[stations]]
code = "S1"
plant = "P1"
all_shift_time_planned = true
ideal_cycle_s = 1.0
"#;

/// (ts, signal, value) rows of one station.
const ROWS: [(&str, &str, &str); 6] = [
    ("2026-03-02T08:00:00Z", "productive", "1"),
    ("2026-03-02T08:00:30Z", "production_complete_good", "40"),
    ("2026-03-02T08:01:30Z", "production_complete_good", "50"),
    ("2026-03-02T08:01:30Z", "production_complete_bad", "2"),
    ("2026-03-02T08:02:10Z", "error_code", "E7"),
    ("2026-03-02T08:02:59Z", "rssi", "-60"),
];

fn totals(out: &std::path::Path) -> Vec<String> {
    let rows = query(out, "SELECT COUNT(*), SUM(good_qty), SUM(reject_qty), SUM(planned_s), SUM(event_count) FROM station_windows_latest");
    rows[1].clone()
}

#[test]
fn jsonl_csv_gzip_and_parquet_inputs_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = dir.path().join("context.toml");
    fs::write(&ctx, CONTEXT).expect("context");
    // JSON Lines: rows with the same ts form one record.
    let mut jsonl = String::new();
    let mut i = 0;
    while i < ROWS.len() {
        let ts = ROWS[i].0;
        let mut obj = serde_json::Map::new();
        obj.insert("station".into(), "S1".into());
        obj.insert("ts".into(), ts.into());
        while i < ROWS.len() && ROWS[i].0 == ts {
            let v: serde_json::Value = if ROWS[i].1 == "error_code" {
                ROWS[i].2.into()
            } else {
                ROWS[i].2.parse::<f64>().unwrap().into()
            };
            obj.insert(ROWS[i].1.into(), v);
            i += 1;
        }
        jsonl += &serde_json::Value::Object(obj).to_string();
        jsonl.push('\n');
    }
    let jsonl_path = dir.path().join("s.jsonl");
    fs::write(&jsonl_path, &jsonl).expect("jsonl");
    let csv_text: String = std::iter::once("station,ts,signal,value\n".to_string())
        .chain(ROWS.iter().map(|(t, k, v)| format!("S1,{t},{k},{v}\n")))
        .collect();
    let csv_path = dir.path().join("s.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, csv_text.as_bytes()).expect("gzip");
    fs::write(&csv_path, gz.finish().expect("gzip")).expect("csv.gz");
    let parquet_path = dir.path().join("s.parquet");
    let col = |i: usize| -> ArrayRef {
        let values: Vec<&str> = ROWS.iter().map(|r| [r.0, r.1, r.2][i]).collect();
        Arc::new(StringArray::from(values))
    };
    let batch = RecordBatch::try_from_iter([
        (
            "station",
            Arc::new(StringArray::from(vec!["S1"; ROWS.len()])) as ArrayRef,
        ),
        ("ts", col(0)),
        ("signal", col(1)),
        ("value", col(2)),
    ])
    .expect("batch");
    let mut buf = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    fs::write(&parquet_path, buf).expect("parquet");

    let mut results = Vec::new();
    for input in [&jsonl_path, &csv_path, &parquet_path] {
        let out = dir.path().join(format!(
            "out-{}",
            input.file_name().unwrap().to_string_lossy()
        ));
        replay(&[input], &ctx, &out);
        results.push(totals(&out));
    }
    assert_eq!(results[0], vec!["3", "90.0", "2.0", "180.0", "5"]);
    assert_eq!(results[0], results[1], "CSV differs from JSON Lines");
    assert_eq!(results[0], results[2], "Parquet differs from JSON Lines");
}

#[test]
fn bad_records_are_dead_lettered_with_reason_and_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = dir.path().join("context.toml");
    fs::write(&ctx, CONTEXT).expect("context");
    let input = dir.path().join("bad.jsonl");
    fs::write(
        &input,
        [
            r#"{"station":"S1","ts":"2026-03-02T08:00:00Z","productive":1}"#,
            r#"{"station":"S1","ts":"2026-03-02T08:00:01Z""#,
            r#"{"station":"S1","productive":1}"#,
            r#"{"station":"S1","ts":"02/03/2026","productive":1}"#,
            r#"{"station":"S9","ts":"2026-03-02T08:00:02Z","productive":1}"#,
            r#"{"station":"S1","ts":"2026-03-02T08:00:03Z","line_speed":-5}"#,
            r#"{"station":"S1","ts":"2026-03-02T08:00:00Z","productive":1}"#,
        ]
        .join("\n"),
    )
    .expect("input");
    let out = dir.path().join("out");
    let summary = replay(&[&input], &ctx, &out);
    assert!(summary.contains("duplicates 1"), "{summary}");
    let letters: Vec<serde_json::Value> = fs::read_to_string(out.join("dead_letter.jsonl"))
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let reasons: Vec<(&str, &str)> = letters
        .iter()
        .map(|l| (l["reason"].as_str().unwrap(), l["source"].as_str().unwrap()))
        .collect();
    let src = |line: u32| format!("{}:{line}", input.display());
    assert_eq!(
        reasons
            .iter()
            .map(|(r, s)| (r.to_string(), s.to_string()))
            .collect::<Vec<_>>(),
        vec![
            ("malformed_json".into(), src(2)),
            ("missing_ts".into(), src(3)),
            ("bad_ts".into(), src(4)),
            ("unknown_station".into(), src(5)),
            ("bad_value".into(), src(6)),
        ]
    );
    assert_eq!(
        letters[4]["record"],
        r#"{"station":"S1","ts":"2026-03-02T08:00:03Z","line_speed":-5}"#
    );
}

#[test]
fn failures_say_what_and_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = dir.path().join("context.toml");
    fs::write(&ctx, CONTEXT.replace("ideal_cycle_s", "ideal_cycle_secs")).expect("context");
    let input = workspace().join("operators/tests/golden/continuous_line/signals.jsonl");
    let out = dir.path().join("out");
    let run = |args: &[&str]| {
        let o = stationflow(args);
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let (i, c, o) = (
        input.display().to_string(),
        ctx.display().to_string(),
        out.display().to_string(),
    );
    let msg = run(&["replay", &i, "--context", &c, "--out", &o]);
    assert!(
        msg.contains("context.toml")
            && msg.contains("stations `S1`")
            && msg.contains("ideal_cycle_secs"),
        "{msg}"
    );
    let good_ctx = dir.path().join("good.toml");
    fs::write(&good_ctx, CONTEXT).expect("context");
    let g = good_ctx.display().to_string();
    let msg = run(&["replay", "/no/such/input", "--context", &g, "--out", &o]);
    assert!(msg.contains("/no/such/input"), "{msg}");
    let msg = run(&[
        "replay",
        &i,
        "--context",
        "/no/such/context.toml",
        "--out",
        &o,
    ]);
    assert!(msg.contains("/no/such/context.toml"), "{msg}");
    // A gzip file cut short: its name, and the reason once (the I/O error wraps the
    // gzip decoder's, whose text it shows already).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &fs::read(&input).expect("input")).expect("gzip");
    let whole = gz.finish().expect("gzip");
    let cut = dir.path().join("cut.jsonl.gz");
    fs::write(&cut, &whole[..whole.len() / 2]).expect("cut");
    let msg = run(&[
        "replay",
        &cut.display().to_string(),
        "--context",
        &g,
        "--out",
        &o,
    ]);
    assert!(msg.contains("cut.jsonl.gz"), "{msg}");
    assert_eq!(msg.matches("deflate").count(), 1, "{msg}");
    let msg = run(&["query", "SELECT 1", "--data", "/no/such/data"]);
    assert!(msg.contains("/no/such/data"), "{msg}");
    let ok_out = dir.path().join("ok");
    let _ = ok(&[
        "replay",
        &i,
        "--context",
        &g,
        "--out",
        &ok_out.display().to_string(),
        "--quiet",
    ]);
    let msg = run(&[
        "query",
        "SELECT nope FROM station_windows",
        "--data",
        &ok_out.display().to_string(),
    ]);
    assert!(msg.contains("nope"), "{msg}");
}

#[test]
fn a_memory_root_serves_the_run_itself() {
    let case = workspace().join("operators/tests/golden/oee_shift_hand_computed");
    let out = ok(&[
        "replay",
        &case.join("signals.jsonl").display().to_string(),
        "--context",
        &case.join("context.toml").display().to_string(),
        "--out",
        "memory://runs/1",
    ]);
    // The summary is read back from the in-memory datasets: the hand-computed shift.
    assert!(out.contains("| PRESS-01 | 0.42      | 0.37  | 0.88 | 0.894 | 0.996 | 0.783 | 113.75    | GBP      |"), "{out}");
}
