//! A member's session sees their plants' rows only, whatever SQL they send (SPEC §7): on
//! the sample (LEEDS and AUSTIN), every query gives a LEEDS member exactly what an admin
//! gets from the same query over rows filtered to LEEDS by hand, adversarial queries
//! included, and statements that would change the session or read files are refused.

use std::path::Path;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use stationflow_engine::query::{read_only, scoped_session, session};
use stationflow_engine::store::Root;

use crate::common::replay_sample;

/// Every table and view a member can name, and the admin's hand-filtered stand-in.
const RELATIONS: [&str; 22] = [
    "downtime_events_clean_files",
    "downtime_events_revised_files",
    "downtime_events_copies_files",
    "downtime_events_across_plants_files",
    "window_sums",
    "window_sums_files",
    "station_windows_clean_files",
    "station_windows_revised_files",
    "station_windows_copies_files",
    "station_windows_across_plants_files",
    "station_windows_unsummed_files",
    "station_windows",
    "station_windows_latest",
    "downtime_events",
    "downtime_events_latest",
    "station_windows_files",
    "downtime_events_files",
    "oee_by_shift",
    "oee_by_station_day",
    "oee_by_line_day",
    "oee_by_plant_day",
    "oee_by_sku_day",
];

/// `template` with `{relation}` replaced: by the name for the member, by the relation
/// filtered to LEEDS for the admin.
fn render(template: &str, filtered: bool) -> String {
    let mut sql = template.to_string();
    // Longest names first: `station_windows_latest` before `station_windows`.
    let mut names = RELATIONS.to_vec();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let with = if filtered {
            format!("(SELECT * FROM {name} WHERE plant = 'LEEDS')")
        } else {
            name.to_string()
        };
        sql = sql.replace(&format!("{{{name}}}"), &with);
    }
    sql
}

fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let df = ctx
            .sql_with_options(sql, read_only())
            .await
            .map_err(|e| e.to_string())?;
        let batches: Vec<RecordBatch> = df.collect().await.map_err(|e| e.to_string())?;
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string();
        // Rows only: the header names the expressions, which may spell AUSTIN.
        let mut rows: Vec<String> = text.lines().skip(3).map(str::to_string).collect();
        rows.sort();
        Ok(rows)
    })
}

fn sessions(out: &Path) -> (SessionContext, SessionContext) {
    let root = Root::open_existing(&out.display().to_string(), &Default::default()).expect("root");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let leeds: Arc<[String]> = Arc::from(vec!["LEEDS".to_string()]);
    let member = runtime
        .block_on(scoped_session(&root, Some(leeds)))
        .expect("member session");
    let admin = runtime.block_on(session(&root)).expect("admin session");
    (member, admin)
}

fn sample_output(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("out");
    replay_sample(&out);
    out
}

/// Queries over every relation, and adversarial ones (docs/serving.md): each gives
/// the member what the admin gets over LEEDS' rows alone.
#[test]
fn a_member_sees_only_their_plants_whatever_the_sql() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = sample_output(dir.path());
    let (member, admin) = sessions(&out);
    let mut templates: Vec<String> = RELATIONS
        .iter()
        .flat_map(|r| {
            [
                format!("SELECT count(*) AS n FROM {{{r}}}"),
                format!("SELECT plant, count(*) AS n FROM {{{r}}} GROUP BY plant"),
            ]
        })
        .collect();
    templates.extend(
        [
            "SELECT count(*) FROM {station_windows} WHERE plant = 'AUSTIN'",
            "SELECT count(*) FROM {station_windows} WHERE plant = 'AUSTIN' OR 1 = 1",
            // Rounded: the member's plan and the admin's add in different orders.
            "SELECT station, round(sum(good_qty), 6) FROM {station_windows_latest} GROUP BY station",
            "SELECT count(*) FROM {station_windows} w WHERE EXISTS (SELECT 1 FROM {downtime_events} e WHERE e.station = w.station)",
            "SELECT count(*) FROM {station_windows} WHERE station IN (SELECT station FROM {station_windows_latest} WHERE plant <> 'LEEDS')",
            "SELECT (SELECT max(good_qty) FROM {station_windows}) AS m",
            "SELECT station, (SELECT count(*) FROM {downtime_events} e WHERE e.station = w.station) FROM {station_windows_latest} w GROUP BY station",
            "WITH a AS (SELECT * FROM {station_windows} WHERE plant = 'AUSTIN') SELECT count(*) FROM a",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) FROM {station_windows}, n",
            "SELECT plant FROM {station_windows} UNION SELECT plant FROM {downtime_events}",
            "SELECT station FROM {station_windows_latest} INTERSECT SELECT station FROM {oee_by_station_day}",
            "SELECT count(*) FROM {station_windows} a JOIN {station_windows} b ON a.station = b.station AND a.window_start = b.window_start",
            "SELECT plant, station, rank() OVER (PARTITION BY plant ORDER BY sum(good_qty) DESC) FROM {station_windows_latest} GROUP BY plant, station",
            "SELECT count(*) FROM (SELECT unnest(error_codes) FROM {station_windows})",
            "SELECT max(window_start) FROM {station_windows_latest} WHERE \"plant\" = 'AUSTIN' OR \"plant\" = 'LEEDS'",
            // The side channel: no AUSTIN row may reach the division.
            "SELECT sum(1 / (CASE WHEN plant = 'AUSTIN' THEN 0 ELSE 1 END)) FROM {station_windows}",
            "SELECT count(*) FROM {oee_by_plant_day} WHERE oee IS NOT NULL",
        ]
        .map(str::to_string),
    );
    let mut checked = 0;
    for template in &templates {
        let as_member = run(&member, &render(template, false));
        let as_admin = run(&admin, &render(template, true));
        assert_eq!(as_member, as_admin, "{template}");
        let rows = as_member.unwrap_or_else(|e| panic!("{template}: {e}"));
        assert!(
            !rows.iter().any(|r| r.contains("AUSTIN")),
            "{template}: {rows:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, templates.len());
    // The side channel in a filter: the listing evaluates filters on partition values, so
    // it must never see one that can fail on AUSTIN's folders. (An admin's session, with
    // no scope, does fail on these: DataFusion's own behaviour, and they see AUSTIN.)
    for sql in [
        "SELECT count(*) FROM station_windows WHERE 1 / (CASE WHEN plant = 'AUSTIN' THEN 0 ELSE 1 END) = 1",
        "SELECT count(*) FROM downtime_events_latest WHERE CAST(CASE WHEN plant = 'AUSTIN' THEN 'x' ELSE '1' END AS INT) = 1",
        "SELECT count(*) FROM oee_by_plant_day WHERE 1 / (CASE WHEN plant = 'AUSTIN' THEN 0 ELSE 1 END) = 1",
    ] {
        let counted = run(&member, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let everything = run(&member, &sql[..sql.find(" WHERE").unwrap()]).unwrap();
        assert_eq!(counted, everything, "{sql}");
    }
    // The admin sees AUSTIN; the member does not, even naming it.
    let austin = "SELECT count(*) > 0 FROM station_windows WHERE plant = 'AUSTIN'";
    assert!(run(&admin, austin)
        .unwrap()
        .iter()
        .any(|r| r.contains("true")));
    assert!(run(&member, austin)
        .unwrap()
        .iter()
        .any(|r| r.contains("false")));
}

/// Random SELECTs (a seeded generator: relation, grouping, filter, aggregates) give a
/// LEEDS member what the admin gets over rows filtered to LEEDS by hand.
#[test]
fn random_selects_agree_with_filtering_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = sample_output(dir.path());
    let (member, admin) = sessions(&out);
    let relations = [
        "station_windows",
        "station_windows_latest",
        "oee_by_station_day",
        "oee_by_shift",
        "oee_by_line_day",
    ];
    let groups = ["station", "line", "plant", "production_date"];
    let filters = [
        "good_qty > 10",
        "plant <> 'LEEDS'",
        "station LIKE 'PRESS%' OR station LIKE 'CNC%'",
        "production_date >= DATE '2026-03-04'",
        "oee IS NULL",
        "planned_s > 0 AND downtime_s > 0",
    ];
    let measures = [
        "count(*)",
        "sum(good_qty)",
        "max(downtime_s)",
        "min(planned_s)",
        "count(DISTINCT station)",
        "avg(run_s)",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pick = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut ran = 0;
    for _ in 0..60 {
        let relation = relations[pick(relations.len())];
        let group = groups[pick(groups.len())];
        let filter = filters[pick(filters.len())];
        let a = measures[pick(measures.len())];
        let b = measures[pick(measures.len())];
        // Rounded: a float sum's last digits depend on the order the scan's partitions
        // add up in, which differs between the two sessions.
        let template = format!(
            "SELECT {group}, round({a}, 6) AS a, round({b}, 6) AS b \
             FROM {{{relation}}} WHERE {filter} GROUP BY {group}"
        );
        let as_member = run(&member, &render(&template, false));
        let as_admin = run(&admin, &render(&template, true));
        assert_eq!(as_member, as_admin, "{template}");
        ran += usize::from(as_member.is_ok());
    }
    // The rest name a column their relation lacks, and fail alike.
    assert!(ran >= 40, "only {ran} of 60 ran");
}

/// Statements that would change the session, write, or read files by name are refused
/// for everyone, before anything runs.
#[test]
fn statements_that_change_the_session_or_read_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = sample_output(dir.path());
    let (member, _) = sessions(&out);
    let austin = out.join("station_windows/plant=AUSTIN");
    let refused = [
        "SET datafusion.optimizer.max_passes = 0".to_string(),
        format!(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
            austin.display()
        ),
        format!("COPY (SELECT 1) TO '{}/x.csv'", dir.path().display()),
        "CREATE VIEW v AS SELECT * FROM station_windows".into(),
        "INSERT INTO station_windows_files SELECT * FROM station_windows_files".into(),
        format!("SELECT * FROM '{}'", austin.display()),
        "DROP VIEW station_windows".into(),
    ];
    for sql in &refused {
        assert!(run(&member, sql).is_err(), "{sql} ran");
    }
    // The member's scope still holds after each attempt.
    let rows = run(
        &member,
        "SELECT count(*) FROM station_windows WHERE plant = 'AUSTIN'",
    )
    .unwrap();
    assert!(
        rows.iter().any(|r| r.trim_matches(['|', ' ']) == "0"),
        "{rows:?}"
    );
}
