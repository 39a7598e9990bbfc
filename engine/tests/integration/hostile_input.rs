//! Hostile and broken input: one stray record in the middle of clean history changes no
//! window and lands in the dead letters with its reason; plant codes with spaces, `#`,
//! `%` and letters of any script survive replay, query, compaction, deletion and export.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{number, ok, query, replay};

/// A clean file of 20 stations, one record a station-minute for six hours, and its
/// context, made by `stationflow generate`.
fn clean_history(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("generated");
    ok(&[
        "generate",
        "--stations",
        "20",
        "--records",
        "7200",
        "--interval-ms",
        "60000",
        "--out",
        &out.display().to_string(),
    ]);
    (out.join("signals.jsonl"), out.join("context.toml"))
}

/// Every column of the latest windows but `emitted_at`, in a fixed order.
fn latest_windows(out: &Path) -> Vec<Vec<String>> {
    query(
        out,
        "SELECT * EXCEPT (emitted_at) FROM station_windows_latest ORDER BY station, window_start",
    )
}

fn dead_letters(out: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(out.join("dead_letter.jsonl")).expect("dead letters");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect()
}

/// Records that each must end in the dead letters with the reason beside them, and leave
/// every window as the clean run made it: for nine of `stations`, the values at `at`
/// (an RFC 3339 instant inside the data).
pub fn stray_records(stations: [&str; 9], at: &str) -> Vec<(String, &'static str)> {
    let [s0, s1, s2, s3, s4, s5, s6, s7, s8] = stations;
    vec![
        // A device whose clock battery died: 1970.
        (
            format!(r#"{{"station":"{s0}","ts":0,"productive":1}}"#),
            "bad_ts",
        ),
        // Firmware sending epoch seconds where milliseconds belong.
        (
            format!(r#"{{"station":"{s1}","ts":1777870800,"production_complete_good":1}}"#),
            "bad_ts",
        ),
        (
            format!(r#"{{"station":"{s2}","ts":-253402300799999,"productive":0}}"#),
            "bad_ts",
        ),
        // The RTC's reset value of many devices.
        (
            format!(r#"{{"station":"{s3}","ts":"2000-01-01T00:00:00Z","productive":0}}"#),
            "bad_ts",
        ),
        // History cannot come from the future.
        (
            format!(r#"{{"station":"{s4}","ts":"9999-12-31T23:59:59.999Z","productive":1}}"#),
            "future_ts",
        ),
        (
            format!(r#"{{"station":"{s5}","ts":"2036-01-01T00:00:00Z","productive":1}}"#),
            "future_ts",
        ),
        // A counter that glitched: its sums would not be finite.
        (
            format!(
                r#"{{"station":"{s6}","ts":"{at}","production_count_good":1.7976931348623157e308}}"#
            ),
            "bad_value",
        ),
        (
            format!(r#"{{"station":"{s7}","ts":"{at}","production_complete_good":1e400}}"#),
            "bad_value",
        ),
        (
            format!(
                r#"{{"station":"{s8}","ts":"{at}","error_code":"{}"}}"#,
                "E".repeat(10_000)
            ),
            "bad_value",
        ),
    ]
}

/// `stray_records` for the generated history, and what only a file can hold: a station
/// code too long, two megabytes without a newline.
fn stray_lines() -> Vec<(String, &'static str)> {
    let at = "2026-03-02T09:00:00.500Z";
    let stations = std::array::from_fn::<_, 9, _>(|i| format!("ST-{i:05}"));
    let mut strays = stray_records(stations.each_ref().map(String::as_str), at);
    let long_station = "S".repeat(10_000);
    strays.push((
        format!(r#"{{"station":"{long_station}","ts":"{at}","productive":1}}"#),
        "bad_value",
    ));
    strays.push((
        format!(
            r#"{{"station":"ST-00009","ts":"{at}","note":"{}"}}"#,
            "x".repeat(2 << 20)
        ),
        "too_large",
    ));
    strays
}

#[test]
fn a_stray_record_changes_no_window_and_is_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (signals, context) = clean_history(dir.path());
    let clean_out = dir.path().join("clean");
    replay(&[&signals], &context, &clean_out);
    let clean = latest_windows(&clean_out);
    assert!(
        clean.len() > 20 * 360,
        "20 stations, six hours: {}",
        clean.len()
    );
    assert!(dead_letters(&clean_out).is_empty());

    let lines: Vec<String> = fs::read_to_string(&signals)
        .expect("signals")
        .lines()
        .map(str::to_string)
        .collect();
    // A record 30 hours before the data, at the end: too late, and no window before it.
    let too_late = (
        r#"{"station":"ST-00010","ts":"2026-03-01T00:00:00Z","productive":1}"#.to_string(),
        "too_late",
    );
    let mut cases: Vec<(String, &str, usize)> = stray_lines()
        .into_iter()
        .map(|(line, reason)| (line, reason, lines.len() / 2))
        .collect();
    cases.push((too_late.0, too_late.1, lines.len()));
    for (n, (stray, reason, at)) in cases.iter().enumerate() {
        let mut text = lines[..*at].join("\n");
        text.push('\n');
        text.push_str(stray);
        text.push('\n');
        text.push_str(&lines[*at..].join("\n"));
        let input = dir.path().join(format!("stray-{n}.jsonl"));
        fs::write(&input, text).expect("input");
        let out = dir.path().join(format!("out-{n}"));
        replay(&[&input], &context, &out);
        let label = &stray[..stray.len().min(80)];
        assert!(
            latest_windows(&out) == clean,
            "the windows changed with {label}"
        );
        let dead = dead_letters(&out);
        assert_eq!(dead.len(), 1, "{label}: {dead:?}");
        assert_eq!(dead[0]["reason"], *reason, "{label}: {}", dead[0]);
        let source = dead[0]["source"].as_str().expect("source");
        assert!(source.ends_with(&format!(":{}", at + 1)), "{source}");
        let kept = dead[0]["record"].as_str().expect("record").len();
        assert!(
            kept <= 16_384 || kept == stray.len(),
            "{label}: kept {kept} bytes"
        );
    }
}

#[test]
fn a_line_over_the_limit_in_a_gzip_file_is_skipped_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let context = dir.path().join("context.toml");
    fs::write(
        &context,
        "[[plants]]\ncode = \"P\"\ntimezone = \"UTC\"\n[[stations]]\ncode = \"S\"\nplant = \"P\"\n",
    )
    .expect("context");
    // 64 MB of one line without a newline, then a good record: the good one is applied.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        std::io::Write::write_all(&mut gz, &chunk).expect("gzip");
    }
    std::io::Write::write_all(
        &mut gz,
        b"\n{\"station\":\"S\",\"ts\":\"2026-03-02T08:00:00Z\",\"productive\":1}\n",
    )
    .expect("gzip");
    let input = dir.path().join("huge.jsonl.gz");
    fs::write(&input, gz.finish().expect("gzip")).expect("input");
    let out = dir.path().join("out");
    replay(&[&input], &context, &out);
    let dead = dead_letters(&out);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "too_large");
    assert_eq!(dead[0]["record"].as_str().map(str::len), Some(4096));
    let rows = query(&out, "SELECT SUM(event_count) FROM station_windows_latest");
    assert_eq!(rows[1][0], "1");
}

const ODD_PLANTS: [&str; 4] = [
    "Leeds Site #2",
    "100% Yield",
    "Zürich Süd",
    "Plant/East?x=1",
];

#[test]
fn plant_codes_with_spaces_hashes_and_any_script_survive_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut context = String::new();
    let mut signals = String::new();
    for (i, plant) in ODD_PLANTS.iter().enumerate() {
        let station = format!("{plant} press #{i}");
        context += &format!(
            "[[plants]]\ncode = {plant:?}\ntimezone = \"UTC\"\n\
             [[stations]]\ncode = {station:?}\nplant = {plant:?}\nall_shift_time_planned = true\nideal_cycle_s = 1.0\n"
        );
        for minute in 0..30 {
            signals += &format!(
                "{{\"station\":{station:?},\"ts\":\"2026-03-02T08:{minute:02}:00Z\",\"productive\":1,\"production_complete_good\":{}}}\n",
                10 + i
            );
        }
    }
    let context_path = dir.path().join("context.toml");
    fs::write(&context_path, context).expect("context");
    let input = dir.path().join("signals.jsonl");
    fs::write(&input, signals).expect("signals");
    let out = dir.path().join("out");
    replay(&[&input], &context_path, &out);
    let data = out.display().to_string();
    let per_plant = || {
        query(
            &out,
            "SELECT plant, station, COUNT(*), SUM(good_qty) FROM station_windows_latest GROUP BY plant, station ORDER BY plant",
        )
    };
    let before = per_plant();
    assert_eq!(before.len(), 1 + ODD_PLANTS.len(), "{before:?}");
    for (i, plant) in ODD_PLANTS.iter().enumerate() {
        let row = before
            .iter()
            .find(|r| r[0] == *plant)
            .expect("the plant by its name");
        assert_eq!(row[1], format!("{plant} press #{i}"));
        assert_eq!(number(&row[2]), 30.0, "{row:?}");
        assert_eq!(number(&row[3]), 30.0 * (10 + i) as f64, "{row:?}");
    }

    ok(&["compact", "--data", &data, "--before", "2026-03-03"]);
    assert_eq!(per_plant(), before, "compaction renamed or lost a plant");
    // The plant's own rows, read by partition: a filter on the folder finds them.
    for plant in ODD_PLANTS {
        let sql = format!(
            "SELECT COUNT(*) FROM station_windows WHERE plant = '{}'",
            plant.replace('\'', "''")
        );
        assert_ne!(query(&out, &sql)[1][0], "0", "{plant}");
    }

    let target = dir.path().join("leeds.csv");
    ok(&[
        "export",
        "--plant",
        ODD_PLANTS[0],
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-03",
        "--format",
        "csv",
        "--output",
        &target.display().to_string(),
        "--data",
        &data,
    ]);
    let exported = fs::read_to_string(&target).expect("export");
    assert_eq!(exported.lines().count(), 1 + 30, "{exported}");
    assert!(exported.contains("Leeds Site #2 press #0"));

    let report = ok(&[
        "delete",
        "--plant",
        ODD_PLANTS[0],
        "--actor",
        "test",
        "--data",
        &data,
    ]);
    let after = per_plant();
    assert_eq!(after.len(), ODD_PLANTS.len(), "{report}\n{after:?}");
    assert!(after.iter().all(|r| r[0] != ODD_PLANTS[0]), "{after:?}");
    assert_eq!(
        &after[1..],
        &before[1..]
            .iter()
            .filter(|r| r[0] != ODD_PLANTS[0])
            .cloned()
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn codes_the_context_cannot_hold_are_refused_naming_the_entity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let context = dir.path().join("context.toml");
    fs::write(&context, "[[plants]]\ncode = \"P \"\ntimezone = \"UTC\"\n").expect("context");
    let input = dir.path().join("s.jsonl");
    fs::write(&input, "").expect("input");
    let out = crate::common::stationflow(&[
        "replay",
        &input.display().to_string(),
        "--context",
        &context.display().to_string(),
        "--out",
        &dir.path().join("out").display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plants `P `") && err.contains("white space"),
        "{err}"
    );
}

#[test]
fn query_is_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (signals, context) = clean_history(dir.path());
    let out = dir.path().join("out");
    replay(&[&signals], &context, &out);
    let data = out.display().to_string();
    let target = dir.path().join("copied");
    let before = query(&out, "SELECT COUNT(*) FROM station_windows");
    for sql in [
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/'".to_string(),
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        "INSERT INTO station_windows SELECT * FROM station_windows".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "SELECT * FROM '/etc/passwd'".to_string(),
    ] {
        let run = crate::common::stationflow(&["query", &sql, "--data", &data]);
        assert!(!run.status.success(), "{sql} ran");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!err.contains("root:"), "{err}");
    }
    assert!(!target.exists());
    assert_eq!(query(&out, "SELECT COUNT(*) FROM station_windows"), before);
}
