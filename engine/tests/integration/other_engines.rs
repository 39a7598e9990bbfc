//! The Parquet read as it is by other engines: pyarrow and DuckDB (`scripts/test` installs
//! both and names their Python in `STATIONFLOW_READERS_PYTHON`) open the sample week's
//! output with hive partitioning and nothing else, and must see SPEC §5's columns and
//! types, statistics on every column chunk, and the same rows and sums that
//! `stationflow query` gives.

use std::process::Command;

use serde_json::Value;

use crate::common::{number, query, replay_sample, workspace};

/// SPEC §5's `station_windows` columns in order, with pyarrow's and DuckDB's names for
/// their types; the hive partition `date` follows them.
const WINDOW_COLUMNS: &str = "plant, line, station, window_start, window_end, production_date, \
    shift, shift_date, sku, order_id, shift_s, planned_s, planned_stop_s, schedule_loss_s, \
    productive_s, run_s, downtime_s, no_data_s, downtime_reason, error_codes, good_qty, \
    reject_qty, total_qty, ideal_cycle_s, ideal_qty, target_qty, utilisation, availability, \
    performance, quality, oee, availability_loss_s, performance_loss_s, quality_loss_s, \
    availability_loss_qty, performance_loss_qty, quality_loss_qty, availability_loss_cost, \
    performance_loss_cost, quality_loss_cost, loss_cost, schedule_loss_cost, \
    planned_stop_cost, currency, cycle_time_avg, line_speed_avg, line_speed_target, \
    energy_kwh, kwh_per_unit, rssi_avg, is_alive, event_count, revision, emitted_at";

fn window_type(column: &str) -> (&'static str, &'static str) {
    match column {
        "window_start" | "window_end" | "emitted_at" => {
            ("timestamp[ms, tz=UTC]", "TIMESTAMP WITH TIME ZONE")
        }
        "production_date" | "shift_date" => ("date32[day]", "DATE"),
        "error_codes" => ("list<item: string>", "VARCHAR[]"),
        "is_alive" => ("bool", "BOOLEAN"),
        "event_count" => ("int64", "BIGINT"),
        "revision" => ("int32", "INTEGER"),
        "plant" | "line" | "station" | "shift" | "sku" | "order_id" | "downtime_reason"
        | "currency" => ("string", "VARCHAR"),
        _ => ("double", "DOUBLE"),
    }
}

#[test]
fn pyarrow_and_duckdb_read_the_output_as_it_is() {
    let out = tempfile::tempdir().expect("tempdir");
    replay_sample(out.path());
    let seen = read_with_other_engines(out.path());

    // Columns, order and types as SPEC §5 lists them, in both engines.
    let columns: Vec<&str> = WINDOW_COLUMNS.split(", ").map(str::trim).collect();
    let expect = |engine: usize, partition_type: &str| -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = columns
            .iter()
            .map(|c| {
                let (pyarrow, duckdb) = window_type(c);
                (c.to_string(), [pyarrow, duckdb][engine].to_string())
            })
            .collect();
        fields.push(("date".into(), partition_type.into()));
        fields
    };
    let windows = &seen["pyarrow"]["station_windows"];
    assert_eq!(pairs(&windows["fields"]), expect(0, "string"));
    assert_eq!(pairs(&seen["duckdb"]["types"]), expect(1, "DATE"));
    let events = &seen["pyarrow"]["downtime_events"];
    let event_fields = pairs(&events["fields"]);
    for (name, ty) in [
        ("station", "string"),
        ("start", "timestamp[ms, tz=UTC]"),
        ("end", "timestamp[ms, tz=UTC]"),
        ("duration_s", "double"),
        ("reason", "string"),
        ("error_code", "string"),
        ("revision", "int32"),
    ] {
        assert!(
            event_fields.contains(&(name.into(), ty.into())),
            "downtime_events lacks {name}: {ty}: {event_fields:?}"
        );
    }

    // Statistics on every column chunk: what lets engines skip row groups.
    for (name, dataset) in [("station_windows", windows), ("downtime_events", events)] {
        assert!(
            dataset["chunks"].as_u64().unwrap_or(0) > 0,
            "{name}: no chunks"
        );
        assert_eq!(dataset["without_stats"], Value::Array(vec![]), "{name}");
        assert_eq!(dataset["without_min_max"], Value::Array(vec![]), "{name}");
    }

    // The hive folders are the plants and UTC dates of the rows, no more, no fewer.
    let partitions = query(
        out.path(),
        "SELECT DISTINCT 'station_windows/plant=' || plant || '/date=' || CAST(CAST(window_start AS DATE) AS VARCHAR) AS f
         FROM station_windows ORDER BY f",
    );
    let folders: Vec<String> = partitions[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(strings(&windows["folders"]), folders);

    // The same rows and sums as stationflow's own queries.
    let ours = |sql: &str| query(out.path(), sql)[1..].to_vec();
    let count = ours("SELECT COUNT(*) FROM station_windows");
    assert_eq!(windows["rows"].as_f64(), Some(number(&count[0][0])));
    let by_plant = ours(
        "SELECT plant, COUNT(*), SUM(good_qty), SUM(run_s), SUM(loss_cost)
         FROM station_windows GROUP BY plant ORDER BY plant",
    );
    let theirs = seen["duckdb"]["by_plant"].as_array().expect("by_plant");
    assert_eq!(theirs.len(), by_plant.len(), "{theirs:?} vs {by_plant:?}");
    assert_eq!(by_plant.len(), 2, "two plants: {by_plant:?}");
    for (row, mine) in theirs.iter().zip(&by_plant) {
        assert_eq!(row[0].as_str(), Some(mine[0].as_str()));
        for i in 1..5 {
            assert_close(&row[i], &mine[i], "by plant");
        }
    }
    let latest = ours("SELECT COUNT(*), SUM(good_qty) FROM station_windows_latest");
    let revisions = number(&count[0][0]) - number(&latest[0][0]);
    assert!(revisions > 0.0, "the sample revises windows");
    assert_close(&seen["duckdb"]["latest"][0], &latest[0][0], "latest rows");
    assert_close(
        &seen["duckdb"]["latest"][1],
        &latest[0][1],
        "latest good_qty",
    );
    let one_day = ours(
        "SELECT COUNT(*) FROM station_windows WHERE plant = 'LEEDS' AND date = DATE '2026-03-03'",
    );
    assert!(number(&one_day[0][0]) > 0.0);
    assert_close(
        &seen["duckdb"]["leeds_2026_03_03"],
        &one_day[0][0],
        "one partition",
    );
    let event_sums = ours("SELECT COUNT(*), SUM(downtime_s) FROM downtime_events");
    assert!(number(&event_sums[0][0]) > 10.0, "{event_sums:?}");
    assert_eq!(events["rows"].as_f64(), Some(number(&event_sums[0][0])));
    assert_close(&seen["duckdb"]["events"][0], &event_sums[0][0], "events");
    assert_close(
        &seen["duckdb"]["events"][1],
        &event_sums[0][1],
        "downtime_s",
    );
}

fn read_with_other_engines(root: &std::path::Path) -> Value {
    let python = std::env::var("STATIONFLOW_READERS_PYTHON").expect(
        "STATIONFLOW_READERS_PYTHON must name a Python with pyarrow and duckdb: run the suite \
         with scripts/test, which installs them",
    );
    let script = workspace().join("engine/tests/integration/other_engines.py");
    let run = Command::new(python)
        .arg(script)
        .arg(root)
        .output()
        .expect("the readers' Python runs");
    assert!(
        run.status.success(),
        "other_engines.py failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).expect("other_engines.py prints JSON")
}

fn pairs(fields: &Value) -> Vec<(String, String)> {
    fields
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap_or("").into(),
                f[1].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

/// Sums agree up to the order of addition.
fn assert_close(theirs: &Value, ours: &str, what: &str) {
    let (a, b) = (theirs.as_f64().expect("a number"), number(ours));
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: other engine {a}, stationflow {b}"
    );
}
