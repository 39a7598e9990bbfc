//! The README's main job: replay of `replay-data/` — every station-minute present once
//! per revision, the planted bad records dead-lettered, the late buffer revising windows,
//! and the Parquet readable with the exact types of SPEC §5.

use std::fs;

use arrow::datatypes::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{
    assert_rows_match, number, query, reference_events_latest, reference_latest, reference_rollup,
    replay_sample, replay_sample_with,
};

#[test]
fn replay_of_the_sample() {
    let out = tempfile::tempdir().expect("tempdir");
    let summary = replay_sample(out.path());
    assert!(summary.contains("dead letters 7 (malformed_json 1, missing_ts 1, bad_ts 1, unknown_station 1, bad_value 3)"), "{summary}");
    assert!(summary.contains("duplicates 2"), "{summary}");

    // Every station has every minute of the replayed span, and no (station, minute,
    // revision) is written twice.
    let rows = query(
        out.path(),
        "SELECT COUNT(DISTINCT station), COUNT(*), COUNT(DISTINCT station || CAST(window_start AS VARCHAR)),
                (MAX(CAST(window_start AS BIGINT)) - MIN(CAST(window_start AS BIGINT))) / 60000 + 1
         FROM station_windows_latest",
    );
    let (stations, latest, distinct, minutes) = (
        number(&rows[1][0]),
        number(&rows[1][1]),
        number(&rows[1][2]),
        number(&rows[1][3]),
    );
    assert_eq!(stations, 15.0);
    assert_eq!(latest, distinct);
    assert_eq!(latest, stations * minutes);
    let dupes = query(
        out.path(),
        "SELECT COUNT(*) FROM (SELECT station, window_start, revision FROM station_windows
         GROUP BY station, window_start, revision HAVING COUNT(*) > 1)",
    );
    assert_eq!(dupes[1][0], "0");

    // CNC-03's buffer, delivered four hours late, revised its windows: the latest show data.
    let cnc = query(
        out.path(),
        "SELECT MAX(revision), SUM(no_data_s), SUM(event_count) FROM station_windows_latest
         WHERE station = 'CNC-03' AND window_start >= TIMESTAMP '2026-03-04T16:00:00Z' AND window_start < TIMESTAMP '2026-03-04T20:00:00Z'",
    );
    assert!(number(&cnc[1][0]) >= 1.0, "revisions expected: {cnc:?}");
    assert_eq!(
        number(&cnc[1][1]),
        0.0,
        "no data left after the buffer arrived: {cnc:?}"
    );
    assert!(number(&cnc[1][2]) > 100.0);

    // Roll-ups divide sums; the plant-day view agrees with the windows.
    let check = query(
        out.path(),
        "SELECT (SELECT SUM(run_s) / SUM(planned_s) FROM station_windows_latest WHERE plant = 'LEEDS'),
                (SELECT SUM(run_s) / SUM(planned_s) FROM oee_by_plant_day WHERE plant = 'LEEDS')",
    );
    assert!(
        (number(&check[1][0]) - number(&check[1][1])).abs() < 1e-12,
        "{check:?}"
    );
    // CSV output writes list cells (error_codes) as their items joined with `|`.
    let codes = query(
        out.path(),
        "SELECT error_codes FROM station_windows_latest WHERE cardinality(error_codes) > 0 LIMIT 1",
    );
    assert!(
        !codes[1][0].is_empty() && !codes[1][0].starts_with('['),
        "{codes:?}"
    );
    let events = query(
        out.path(),
        "SELECT COUNT(*), SUM(downtime_s) FROM downtime_events_latest",
    );
    assert!(number(&events[1][0]) > 10.0, "{events:?}");

    // Plain Parquet, readable as is: the types of SPEC §5, statistics written.
    let file = walk(out.path().join("station_windows").as_path())
        .into_iter()
        .next()
        .expect("a parquet file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).expect("open"))
        .expect("parquet");
    let schema = reader.schema().clone();
    let ty = |c: &str| schema.field_with_name(c).expect(c).data_type().clone();
    assert_eq!(schema.fields()[0].name(), "plant");
    assert_eq!(schema.fields().len(), 54);
    assert_eq!(
        ty("window_start"),
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(ty("production_date"), DataType::Date32);
    assert!(matches!(ty("error_codes"), DataType::List(_)));
    assert_eq!(ty("is_alive"), DataType::Boolean);
    assert_eq!(ty("event_count"), DataType::Int64);
    assert_eq!(ty("revision"), DataType::Int32);
    assert_eq!(ty("oee"), DataType::Float64);
    let meta = reader.metadata().row_group(0).column(0);
    assert!(meta.statistics().is_some(), "column statistics are written");
    assert!(
        file.to_string_lossy().contains("plant=")
            && file.to_string_lossy().contains("/date=2026-03-0")
    );
}

/// Replay on several threads writes files of its own per thread, and the same rows: the
/// latest windows and events, the revisions, the sums, the dead letters and the counts.
#[test]
fn threads_give_the_output_of_one() {
    let (one, four) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summaries = [
        replay_sample_with(one.path(), &["--threads", "1"]),
        replay_sample_with(four.path(), &["--threads", "4"]),
    ];
    // The summary but for how long it took and how many files it wrote.
    let counts = |summary: &str| -> Vec<String> {
        (summary.lines())
            .filter(|l| !l.starts_with("replayed") && !l.starts_with("peak memory"))
            .map(|l| l.split(" in ").next().unwrap_or(l).to_string())
            .collect()
    };
    assert_eq!(counts(&summaries[0]), counts(&summaries[1]));
    for sql in [
        "SELECT * FROM station_windows ORDER BY station, window_start, revision",
        "SELECT * FROM downtime_events ORDER BY station, start, revision",
    ] {
        let want = query(one.path(), sql);
        assert!(want.len() > 1, "{sql}: no rows");
        assert_eq!(want, query(four.path(), sql), "{sql}");
    }
    // Sums of the same numbers in another order may differ in the last bits.
    for sql in [
        "SELECT * FROM window_sums ORDER BY plant, date, station, line, sku, shift_date, shift, production_date",
        "SELECT * FROM oee_by_line_day ORDER BY plant, line, production_date",
    ] {
        assert_rows_match(&query(four.path(), sql), &query(one.path(), sql), sql);
    }
    let dead_letters = |root: &std::path::Path| fs::read(root.join("dead_letter.jsonl")).unwrap();
    assert_eq!(dead_letters(one.path()), dead_letters(four.path()));
    let files = |root: &std::path::Path| walk(&root.join("station_windows"));
    let threaded = files(four.path());
    assert!(
        threaded
            .iter()
            .any(|f| f.to_string_lossy().contains("part-t3-")),
        "{threaded:?}"
    );
    assert!(files(one.path())
        .iter()
        .all(|f| !f.to_string_lossy().contains("part-t")));
}

/// Three shards replayed into one root give the rows of one replay of everything, and
/// running a shard again replaces its part only.
#[test]
fn shards_into_one_root_give_the_output_of_one_replay() {
    let (whole, sharded) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    replay_sample(whole.path());
    replay_shards(sharded.path(), &[]);
    let want = shard_answers(whole.path());
    assert_eq!(want, shard_answers(sharded.path()));
    let want_rollup = query(whole.path(), ROLLUP);
    assert_rows_match(
        &query(sharded.path(), ROLLUP),
        &want_rollup,
        "sharded roll-up",
    );
    assert_eq!(dead_letters(whole.path()).len(), 7);
    assert_eq!(dead_letters(whole.path()), dead_letters(sharded.path()));
    replay_sample_with(sharded.path(), &["--shard", "1/3", "--threads", "3"]);
    assert_eq!(want, shard_answers(sharded.path()));
    assert_rows_match(
        &query(sharded.path(), ROLLUP),
        &want_rollup,
        "a shard again",
    );

    // At once, as a job array runs them: each finds the others' files coming and going.
    let at_once = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for shard in ["0/3", "1/3", "2/3"] {
            let root = at_once.path();
            scope.spawn(move || replay_sample_with(root, &["--shard", shard]));
        }
    });
    assert_eq!(want, shard_answers(at_once.path()));
    assert_rows_match(
        &query(at_once.path(), ROLLUP),
        &want_rollup,
        "shards at once",
    );
}

/// Shards by plant (`--plants`) give the rows of one replay of everything too, and each
/// plant's files are one shard's. The sample's two plants hash to shards 2 and 1 of 3, so
/// shard 0 answers only for the record of a station the context does not know and for
/// the malformed lines.
#[test]
fn shards_by_plant_keep_each_plant_to_one_shard() {
    let (whole, sharded) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    replay_sample(whole.path());
    replay_shards(sharded.path(), &["--plants"]);
    assert_eq!(shard_answers(whole.path()), shard_answers(sharded.path()));
    assert_rows_match(
        &query(sharded.path(), ROLLUP),
        &query(whole.path(), ROLLUP),
        "roll-up of shards by plant",
    );
    assert_eq!(dead_letters(whole.path()), dead_letters(sharded.path()));
    let shard_of = |plant: &str| {
        let files = walk(&sharded.path().join("station_windows").join(plant));
        assert!(!files.is_empty(), "{plant}");
        let names = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy());
        (names.map(|name| name.split('-').nth(1).unwrap().to_string()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(shard_of("plant=LEEDS"), ["s2of3".to_string()].into());
    assert_eq!(shard_of("plant=AUSTIN"), ["s1of3".to_string()].into());
}

/// Replays the sample as shards 0/3, 1/3 and 2/3 into `root`, one after another.
fn replay_shards(root: &std::path::Path, options: &[&str]) {
    let mut left_to_others = 0;
    for shard in ["0/3", "1/3", "2/3"] {
        let summary = replay_sample_with(root, &[&["--shard", shard], options].concat());
        let line = summary
            .lines()
            .find(|l| l.starts_with("left to the other shards "));
        left_to_others += line.map_or(0, |l| l[25..].parse::<u64>().unwrap());
    }
    assert_eq!(left_to_others, 2 * 163_426, "each record is one shard's");
}

/// Sums of the same numbers in another order may differ in the last bits.
const ROLLUP: &str = "SELECT * FROM oee_by_line_day ORDER BY plant, line, production_date";

/// What one replay of everything and its shards must answer alike.
fn shard_answers(root: &std::path::Path) -> [Vec<Vec<String>>; 3] {
    [
        "SELECT * FROM station_windows_latest ORDER BY station, window_start",
        "SELECT * FROM downtime_events_latest ORDER BY station, start",
        "SELECT count(*), count(DISTINCT station) FROM station_windows",
    ]
    .map(|sql| query(root, sql))
}

/// Every dead letter under `root`, from whichever shard's file, sorted.
fn dead_letters(root: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = (fs::read_dir(root).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("dead_letter")
        })
        .flat_map(|p| {
            let text = fs::read_to_string(p).unwrap();
            text.lines().map(String::from).collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// `plant` and `date` filters reach the listing: a query for one plant and two days
/// reads only those folders (EXPLAIN's file groups). A `date` filter prunes every view
/// always; a `plant` filter prunes the raw tables always, and every other view while
/// the days' sums and classes are fresh (they say no key is in two plants). A `date`
/// filter on the `_latest` views gives the rows of the unfiltered view.
#[test]
fn plant_and_date_filters_read_only_those_folders_in_every_view() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let (days, others) = (
        ["2026-03-04", "2026-03-05"],
        ["2026-03-02", "2026-03-03", "2026-03-06"],
    );
    let dated = [
        "station_windows",
        "station_windows_latest",
        "downtime_events",
        "downtime_events_latest",
        "window_sums",
    ];
    let rollups = [
        "oee_by_shift",
        "oee_by_station_day",
        "oee_by_line_day",
        "oee_by_plant_day",
        "oee_by_sku_day",
    ];
    for sums in ["fresh", "missing"] {
        if sums == "missing" {
            fs::remove_dir_all(out.path().join("window_sums")).expect("remove the sums");
            fs::remove_dir_all(out.path().join("_classes")).expect("remove the classes");
        }
        for view in dated.iter().chain(&rollups) {
            let filter = if dated.contains(view) {
                format!(
                    "plant = 'LEEDS' AND date BETWEEN '{}' AND '{}'",
                    days[0], days[1]
                )
            } else {
                "plant = 'LEEDS'".to_string()
            };
            let plan = query(
                out.path(),
                &format!("EXPLAIN SELECT DISTINCT plant FROM {view} WHERE {filter}"),
            );
            let physical = crate::common::physical_plan(&plan);
            let what = format!("{view} with sums {sums}: {physical}");
            assert!(physical.contains("plant=LEEDS"), "{what}");
            let by_plant = ["station_windows", "downtime_events"].contains(view) || sums == "fresh";
            if by_plant {
                assert!(!physical.contains("plant=AUSTIN"), "{what}");
            }
            if dated.contains(view) {
                assert!(physical.contains(&format!("date={}", days[1])), "{what}");
                for other in others {
                    assert!(!physical.contains(&format!("date={other}")), "{what}");
                }
            }
        }
        for (view, key) in [
            ("station_windows_latest", "window_start"),
            ("downtime_events_latest", "\"start\""),
        ] {
            let day = days[1];
            let filtered = query(
                out.path(),
                &format!("SELECT count(*), max(revision) FROM {view} WHERE date = '{day}'"),
            );
            let by_key = query(
                out.path(),
                &format!(
                    "SELECT count(*), max(revision) FROM {view} \
                     WHERE CAST({key} AS DATE) = DATE '{day}'"
                ),
            );
            assert_eq!(filtered, by_key, "{view}");
            assert!(number(&filtered[1][0]) > 0.0, "{view}: {filtered:?}");
        }
    }
}

/// A filter on the instant whose UTC day is the `date` folder (`window_start`, an
/// event's `start`) reads only the days it implies, in the raw tables and the latest
/// views alike, and gives the rows of the same filter with the days spelled out.
#[test]
fn time_filters_read_only_the_days_they_imply() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let folders: Vec<String> = fs::read_dir(out.path().join("station_windows/plant=LEEDS"))
        .expect("LEEDS's windows")
        .map(|e| {
            e.expect("a folder")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // The view, the filter, and the first and last day it implies.
    let cases = [
        (
            "station_windows_latest",
            "window_start >= TIMESTAMP '2026-03-05 12:00:00'",
            ("2026-03-05", None),
        ),
        (
            "station_windows",
            "window_start BETWEEN TIMESTAMP '2026-03-03 23:00:00' AND TIMESTAMP '2026-03-04 01:00:00'",
            ("2026-03-03", Some("2026-03-04")),
        ),
        (
            "station_windows_latest",
            "CAST(window_start AS DATE) = DATE '2026-03-04'",
            ("2026-03-04", Some("2026-03-04")),
        ),
        (
            "downtime_events_latest",
            "\"start\" < TIMESTAMP '2026-03-04 00:00:00'",
            ("0001-01-01", Some("2026-03-03")),
        ),
    ];
    for (view, filter, (first, last)) in cases {
        let plan = query(
            out.path(),
            &format!("EXPLAIN SELECT count(*) FROM {view} WHERE {filter}"),
        );
        let physical = crate::common::physical_plan(&plan);
        let what = format!("{view} WHERE {filter}: {physical}");
        let implied = |day: &str| day >= first && last.is_none_or(|last| day <= last);
        let mut outside = 0;
        for folder in &folders {
            let day = folder.trim_start_matches("date=");
            if !implied(day) {
                outside += 1;
                assert!(
                    !physical.contains(folder.as_str()),
                    "{folder} read by {what}"
                );
            }
        }
        assert!(outside > 0, "every day is implied by {filter}: {folders:?}");
        let by_time = query(
            out.path(),
            &format!("SELECT count(*), sum(revision) FROM {view} WHERE {filter}"),
        );
        let spelled = format!("date >= '{first}' AND date <= '{}'", last.unwrap_or("9999"));
        let by_date = query(
            out.path(),
            &format!("SELECT count(*), sum(revision) FROM {view} WHERE {filter} AND {spelled}"),
        );
        assert_eq!(by_time, by_date, "{what}");
        assert!(number(&by_time[1][0]) > 0.0, "{what}: {by_time:?}");
    }
}

/// A query keeps to `--memory-limit-mb`: a sort of every window gives the same rows
/// within 256 MB as within the default 2 GB, and one that cannot fit in 1 MB fails,
/// saying so, rather than taking more.
#[test]
fn a_query_keeps_to_its_memory_limit() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let data = out.path().display().to_string();
    let sql = "SELECT * FROM station_windows ORDER BY station, window_start, revision";
    let run = |limit: &str| {
        let args = ["query", sql, "--data", &data, "--format", "csv"];
        crate::common::stationflow(&[&args[..], &["--memory-limit-mb", limit]].concat())
    };
    let (default, within) = (run("2048"), run("256"));
    assert!(default.status.success() && within.status.success());
    assert!(
        default.stdout.len() > 10_000_000,
        "{}",
        default.stdout.len()
    );
    assert!(within.stdout == default.stdout, "other rows within 256 MB");
    let tiny = run("1");
    assert!(!tiny.status.success());
    let err = String::from_utf8_lossy(&tiny.stderr);
    assert!(err.contains("Resources exhausted"), "{err}");
}

/// Every latest view and roll-up gives the rows its definition before `window_sums` gave
/// (written out as the reference): on the replayed sample with fresh sums, after
/// compacting some days, and with one day's sums and event class gone.
#[test]
fn every_view_answers_as_its_definition_before_the_sums() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let mut views = vec![
        (
            "station_windows_latest".to_string(),
            reference_latest(),
            "date, station, window_start".to_string(),
        ),
        (
            "downtime_events_latest".to_string(),
            reference_events_latest(),
            "date, station, \"start\"".to_string(),
        ),
    ];
    for (name, keys, _) in stationflow_engine::query::ROLLUPS {
        views.push((name.to_string(), reference_rollup(keys), keys.to_string()));
    }
    let data = out.path().display().to_string();
    for state in [
        "fresh sums",
        "compacted before 2026-03-04",
        "one day's sums gone",
    ] {
        match state {
            "compacted before 2026-03-04" => {
                let compacted = crate::common::stationflow(&[
                    "compact",
                    "--data",
                    &data,
                    "--before",
                    "2026-03-04",
                ]);
                assert!(compacted.status.success(), "{compacted:?}");
            }
            "one day's sums gone" => {
                for plant in ["LEEDS", "AUSTIN"] {
                    let sums = format!("window_sums/plant={plant}/date=2026-03-05");
                    fs::remove_dir_all(out.path().join(sums)).expect("remove a day's sums");
                }
                let class = out.path().join("_classes/downtime_events/date=2026-03-05");
                fs::remove_dir_all(class).expect("remove a day's event class");
            }
            _ => {}
        }
        for (view, reference, keys) in &views {
            let now = query(out.path(), &format!("SELECT * FROM {view} ORDER BY {keys}"));
            let before = query(
                out.path(),
                &format!("SELECT * FROM ({reference}) ORDER BY {keys}"),
            );
            assert!(now.len() > 1, "{state}: {view} is empty");
            assert_rows_match(&now, &before, &format!("{state}: {view}"));
        }
    }
}

/// A mistyped column is named once, with the column meant; not DataFusion's list of all
/// 55 columns, once per layer of its error chain.
#[test]
fn a_mistyped_column_is_named_once_with_the_one_meant() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let data = out.path().display().to_string();
    let failed = crate::common::stationflow(&[
        "query",
        "--data",
        &data,
        "SELECT reason FROM station_windows",
    ]);
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        said.trim(),
        "stationflow: no column `reason`; did you mean `downtime_reason`?"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A plant of many stations gets a summary of the few with the lowest OEE and how to
/// see the rest, not a row a station; a plant of a few gets every station.
#[test]
fn a_large_plants_summary_lists_the_lowest_oee_not_every_station() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plant = dir.path().join("plant");
    let plant_arg = plant.display().to_string();
    crate::common::ok(&[
        "generate",
        "--stations",
        "40",
        "--records",
        "8000",
        "--cycle-s",
        "20-60",
        "--out",
        &plant_arg,
    ]);
    let out = dir.path().join("out");
    let out_arg = out.display().to_string();
    let signals = plant.join("signals.jsonl").display().to_string();
    let context = plant.join("context.toml").display().to_string();
    let said = crate::common::ok(&["replay", &signals, "--context", &context, "--out", &out_arg]);
    let rows: Vec<&str> = (said.lines()).filter(|l| l.starts_with("| ST-")).collect();
    assert_eq!(rows.len(), 25, "{said}");
    assert!(
        said.contains("the 25 of 40 stations with the lowest OEE"),
        "{said}"
    );
    let oee = |row: &str| -> f64 {
        let cell = row.split('|').nth(7).expect("an oee cell").trim();
        cell.parse().unwrap_or(f64::INFINITY)
    };
    assert!(rows.windows(2).all(|w| oee(w[0]) <= oee(w[1])), "{said}");

    let data = crate::common::workspace().join("replay-data");
    let (sample_signals, sample_context, sample_out) = (
        data.join("signals").display().to_string(),
        data.join("context.toml").display().to_string(),
        dir.path().join("sample").display().to_string(),
    );
    let sample = crate::common::ok(&[
        "replay",
        &sample_signals,
        "--context",
        &sample_context,
        "--out",
        &sample_out,
    ]);
    assert!(!sample.contains("with the lowest OEE"), "{sample}");
    for station in ["CNC-01", "WELD-01", "WELD-02"] {
        assert!(sample.contains(&format!("| {station} ")), "{sample}");
    }
}
