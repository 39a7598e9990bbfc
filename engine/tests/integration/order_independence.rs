//! The same records, arriving differently, end in the same latest windows: the sample as
//! shipped (per plant, in arrival order, CNC-03's buffer delivered four hours late)
//! versus one file per station, merged by event time.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use crate::common::{query, replay, workspace};

const LATEST: &str = "SELECT station, window_start, planned_s, run_s, downtime_s, no_data_s, good_qty, reject_qty,
    ideal_qty, oee, loss_cost, downtime_reason, event_count FROM station_windows_latest ORDER BY station, window_start";

#[test]
fn per_station_files_give_the_windows_of_the_arrival_ordered_files() {
    let data = workspace().join("replay-data");
    let dir = tempfile::tempdir().expect("tempdir");
    let split = dir.path().join("split");
    fs::create_dir_all(&split).expect("dir");
    let mut by_station: BTreeMap<String, String> = BTreeMap::new();
    for plant in ["austin", "leeds"] {
        let mut text = String::new();
        flate2::read::GzDecoder::new(
            fs::File::open(data.join(format!("signals/{plant}.jsonl.gz"))).expect("open"),
        )
        .read_to_string(&mut text)
        .expect("gunzip");
        for line in text.lines() {
            // Lines that do not parse keep their own file: they are dead letters either way.
            let station = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["station"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("unparsed-{plant}"));
            let out = by_station.entry(station).or_default();
            out.push_str(line);
            out.push('\n');
        }
    }
    for (station, text) in &by_station {
        fs::write(split.join(format!("{station}.jsonl")), text).expect("write");
    }
    fs::copy(
        data.join("signals/leeds-oven.csv.gz"),
        split.join("leeds-oven.csv.gz"),
    )
    .expect("copy");

    let (shipped, merged) = (dir.path().join("shipped"), dir.path().join("merged"));
    let a_summary = replay(
        &[&data.join("signals")],
        &data.join("context.toml"),
        &shipped,
    );
    let b_summary = replay(&[&split], &data.join("context.toml"), &merged);
    assert!(
        by_station.len() > 15,
        "one file per station: {}",
        by_station.len()
    );
    let dead = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("dead letters"))
            .map(str::to_string)
    };
    assert_eq!(dead(&a_summary), dead(&b_summary));
    let (a, b) = (query(&shipped, LATEST), query(&merged, LATEST));
    assert!(a.len() > 100_000, "windows expected: {}", a.len());
    assert!(a == b, "latest windows differ");
    let revisions = |out: &std::path::Path| {
        query(
            out,
            "SELECT MAX(revision) FROM station_windows WHERE station = 'CNC-03'",
        )[1][0]
            .clone()
    };
    assert_ne!(revisions(&shipped), "0", "the late buffer revised windows");
}
