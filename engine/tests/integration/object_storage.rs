//! `s3://` roots against a real S3-compatible server (SeaweedFS): replay into a bucket and
//! query it back, partition pruning, and clear failures for wrong keys and a dead store.

use futures::TryStreamExt;
use object_store::path::Path;

use crate::common::{query, query_at, replay, stationflow_with, workspace};
use crate::object_store_server::{ObjectStoreServer, BUCKET};

const LATEST: &str =
    "SELECT station, CAST(window_start AS BIGINT) AS t, revision, planned_s, run_s,
    good_qty, reject_qty, oee, loss_cost FROM station_windows_latest ORDER BY station, t";

fn replay_to(root: &str, env: &[(String, String)]) -> std::process::Output {
    let data = workspace().join("replay-data");
    stationflow_with(
        &[
            "replay",
            &data.join("signals").display().to_string(),
            "--context",
            &data.join("context.toml").display().to_string(),
            "--out",
            root,
            "--quiet",
        ],
        env,
    )
}

fn keys_under(server: &ObjectStoreServer, prefix: &str) -> Vec<String> {
    let bucket = server.bucket();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut keys: Vec<String> = runtime
        .block_on(
            bucket
                .list(Some(&Path::from(prefix)))
                .try_collect::<Vec<_>>(),
        )
        .expect("listing the bucket")
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    keys.sort();
    keys
}

#[test]
fn replay_into_a_bucket_equals_replay_into_a_folder_and_prunes_partitions() {
    let server = ObjectStoreServer::start();
    let env = server.env();
    let s3_root = format!("s3://{BUCKET}/plants/sample");
    let out = replay_to(&s3_root, &env);
    assert!(
        out.status.success(),
        "replay to S3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = tempfile::tempdir().expect("tempdir");
    let data = workspace().join("replay-data");
    replay(
        &[&data.join("signals")],
        &data.join("context.toml"),
        local.path(),
    );

    let from_s3 = query_at(&s3_root, LATEST, &env);
    assert!(from_s3.len() > 100_000, "{} rows", from_s3.len());
    assert!(
        from_s3 == query(local.path(), LATEST),
        "S3 and local differ"
    );

    let keys = keys_under(&server, "plants/sample");
    assert!(keys.contains(&"plants/sample/dead_letter.jsonl".to_string()));
    let windows: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("plants/sample/station_windows/"))
        .collect();
    assert!(windows.len() >= 14, "{windows:?}");
    for key in &windows {
        let parts: Vec<&str> = key.split('/').collect();
        assert!(
            parts.len() == 6
                && parts[3].starts_with("plant=")
                && parts[4].starts_with("date=")
                && parts[5].ends_with(".parquet"),
            "not a hive-partitioned file: {key}"
        );
    }

    // A filter on plant and date reads that partition's files only.
    let partition = "plant=LEEDS/date=2026-03-04/";
    let plan = query_at(
        &s3_root,
        "EXPLAIN SELECT SUM(good_qty) FROM station_windows WHERE plant = 'LEEDS' AND date = '2026-03-04'",
        &env,
    );
    let physical = plan
        .iter()
        .find(|row| row[0] == "physical_plan")
        .map(|row| row[1].clone())
        .expect("a physical plan");
    let read: Vec<&&String> = windows
        .iter()
        .filter(|k| physical.contains(k.trim_start_matches("plants/sample/")))
        .collect();
    assert!(
        !read.is_empty(),
        "no file of the partition in the plan:\n{physical}"
    );
    assert!(
        read.iter().all(|k| k.contains(partition)),
        "files of other partitions in the plan:\n{physical}"
    );
    assert!(
        read.len() == windows.iter().filter(|k| k.contains(partition)).count(),
        "some of the partition's files are missing from the plan:\n{physical}"
    );
    let count = query_at(
        &s3_root,
        "SELECT COUNT(*) FROM station_windows WHERE plant = 'LEEDS' AND date = '2026-03-04'",
        &env,
    );
    let local_count = query(
        local.path(),
        "SELECT COUNT(*) FROM station_windows WHERE plant = 'LEEDS' AND date = '2026-03-04'",
    );
    assert_eq!(count, local_count);
    assert_ne!(count[1][0], "0");
}

#[test]
fn wrong_keys_and_a_dead_store_fail_with_a_reason() {
    let mut server = ObjectStoreServer::start();
    let root = format!("s3://{BUCKET}/refused");
    let mut wrong = server.env();
    for (k, v) in wrong.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".into();
        }
    }
    let out = replay_to(&root, &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(
        stderr.contains(&root),
        "the message names the root: {stderr}"
    );
    assert!(keys_under(&server, "refused").is_empty());

    let out = stationflow_with(&["query", "SELECT 1", "--data", &root], &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused the credentials"), "{stderr}");

    // With the server stopped, replay gives up after the retry timeout, naming the cause.
    server.stop();
    let mut env = server.env();
    env.push(("STATIONFLOW__STORE__RETRY_TIMEOUT_S".into(), "3".into()));
    let out = replay_to(&root, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unreachable"), "{stderr}");

    // Back up, the same command writes its output.
    server.resume();
    let out = replay_to(&root, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(keys_under(&server, "refused").len() > 10);
}
