//! `s3://` roots against a real S3-compatible server (SeaweedFS): replay into a bucket and
//! query it back, partition pruning, and clear failures for wrong keys and a dead store.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};

use crate::common::{ok_with, query, query_at, replay, stationflow_with, workspace};
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

/// `replay_to` that must succeed.
fn replay_ok(root: &str, env: &[(String, String)]) {
    let out = replay_to(root, env);
    assert!(
        out.status.success(),
        "replay to {root} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    replay_ok(&s3_root, &env);
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
    let physical = crate::common::physical_plan(&plan);
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
    replay_ok(&root, &env);
    assert!(keys_under(&server, "refused").len() > 10);
}

/// What the real store answers to a put with a wrong key and while it is down, as the
/// engine classes it: the first is the user's to fix and not tried again, the second an
/// outage to wait out. (A bucket that is not there cannot be shown here: SeaweedFS makes
/// it on the first put; `error::tests` classes S3's 404 for it.)
#[test]
fn store_failures_are_classed_by_kind() {
    use object_store::PutPayload;
    use stationflow_engine::error::{Class, Classify, Domain};

    let mut server = ObjectStoreServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let put = |store: Arc<dyn object_store::ObjectStore>, what: &str| {
        let path = Path::from("classed/x.parquet");
        let put = store.put(&path, PutPayload::from_static(b"x"));
        let result = runtime.block_on(put);
        result.expect_err(&format!("a put {what} fails"))
    };
    let user = Class {
        domain: Domain::User,
        retry: false,
    };
    let wrong_key = put(
        server.bucket_as(BUCKET, "not-the-secret"),
        "with a wrong key",
    );
    assert_eq!(wrong_key.class(), user, "{wrong_key}");
    server.stop();
    let down = put(server.bucket(), "to a store that is down");
    let outage = Class {
        domain: Domain::External,
        retry: true,
    };
    assert_eq!(down.class(), outage, "{down}");
}

fn sha256_of_objects(server: &ObjectStoreServer, prefix: &str) -> BTreeMap<String, String> {
    let bucket = server.bucket();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    keys_under(server, prefix)
        .into_iter()
        .map(|key| {
            let bytes = runtime
                .block_on(async { bucket.get(&Path::from(key.as_str())).await?.bytes().await })
                .expect("reading an object");
            let digest = Sha256::digest(&bytes);
            (key, digest.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect()
}

const ALL_LATEST: &str =
    "SELECT * EXCEPT (date) FROM station_windows_latest ORDER BY station, window_start";

/// Compaction, export and secure deletion on a bucket holding the sample's output, with
/// its late-buffer revisions and a second copy of every file (as a crashed writer leaves).
#[test]
fn compaction_export_and_deletion_in_a_bucket() {
    let server = ObjectStoreServer::start();
    // One audit log for every command of this root (the anchors are the root's).
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit_log = audit_dir.path().join("audit.jsonl").display().to_string();
    let mut env = server.env();
    env.push(("STATIONFLOW_AUDIT_LOG".into(), audit_log.clone()));
    let root = format!("s3://{BUCKET}/maintained");
    replay_ok(&root, &env);
    let bucket = server.bucket();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for key in keys_under(&server, "maintained/station_windows") {
        let copy = key.replace("/part-", "/copy-");
        runtime
            .block_on(bucket.copy(&Path::from(key.as_str()), &Path::from(copy.as_str())))
            .expect("copying a file");
    }
    let latest_before = query_at(&root, ALL_LATEST, &env);
    let count = |sql: &str| query_at(&root, sql, &env)[1][0].clone();
    let raw_before: u64 = count("SELECT COUNT(*) FROM station_windows")
        .parse()
        .unwrap();
    assert_eq!(raw_before as usize, 2 * 163_518, "the sample and its copy");

    // Compaction: one file per partition, only latest revisions, latest view unchanged.
    let summary = ok_with(
        &["compact", "--data", &root, "--before", "2100-01-01"],
        &env,
    );
    assert!(summary.contains("compacted 32 partitions"), "{summary}");
    assert!(
        query_at(&root, ALL_LATEST, &env) == latest_before,
        "latest changed"
    );
    let raw_after: usize = count("SELECT COUNT(*) FROM station_windows")
        .parse()
        .unwrap();
    assert_eq!(raw_after, latest_before.len() - 1);
    let files = keys_under(&server, "maintained/station_windows");
    assert_eq!(files.len(), 18, "{files:?}");
    assert!(files.iter().all(|k| k.contains("/c-")), "{files:?}");
    let again = ok_with(
        &["compact", "--data", &root, "--before", "2100-01-01"],
        &env,
    );
    assert!(again.contains("nothing to compact"), "{again}");

    // Export: a plant's latest windows for a day, as CSV and as Parquet.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("leeds.csv");
    let parquet_path = dir.path().join("leeds.parquet");
    let expected = count(
        "SELECT COUNT(*) FROM station_windows_latest WHERE plant = 'LEEDS'
         AND window_start >= TIMESTAMP '2026-03-04T00:00:00Z' AND window_start < TIMESTAMP '2026-03-05T00:00:00Z'",
    );
    for (format, path) in [("csv", &csv_path), ("parquet", &parquet_path)] {
        let said = ok_with(
            &[
                "export",
                "--data",
                &root,
                "--plant",
                "LEEDS",
                "--from",
                "2026-03-04",
                "--to",
                "2026-03-05",
                "--format",
                format,
                "--output",
                &path.display().to_string(),
            ],
            &env,
        );
        assert!(
            said.contains(&format!("exported {expected} windows")),
            "{said}"
        );
    }
    let csv_rows = csv::Reader::from_path(&csv_path)
        .expect("csv")
        .records()
        .count();
    assert_eq!(csv_rows.to_string(), expected);
    let parquet = std::fs::File::open(&parquet_path).expect("parquet file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
        .expect("readable parquet");
    assert_eq!(
        reader.metadata().file_metadata().num_rows().to_string(),
        expected
    );

    // Deletion: a dry run changes nothing; then one station's day goes, with a report.
    let station_day = "plant = 'AUSTIN' AND station = 'CNC-03' AND window_start >= TIMESTAMP '2026-03-04T00:00:00Z' AND window_start < TIMESTAMP '2026-03-05T00:00:00Z'";
    let others_before = query_at(
        &root,
        &format!("SELECT * EXCEPT (date) FROM station_windows_latest WHERE NOT ({station_day}) ORDER BY station, window_start"),
        &env,
    );
    let objects_before = sha256_of_objects(&server, "maintained");
    let delete = |dry: bool| {
        let mut args = vec![
            "delete",
            "--data",
            &root,
            "--plant",
            "AUSTIN",
            "--station",
            "CNC-03",
            "--from",
            "2026-03-04",
            "--to",
            "2026-03-05",
            "--actor",
            "ops@example.com",
        ];
        if dry {
            args.push("--dry-run");
        }
        ok_with(&args, &env)
    };
    let dry = delete(true);
    assert!(dry.contains("DRY RUN"), "{dry}");
    assert_eq!(sha256_of_objects(&server, "maintained"), objects_before);
    let said = delete(false);
    assert!(said.contains("VERIFIED: no matching row remains"), "{said}");
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM station_windows WHERE {station_day}"
        )),
        "0"
    );
    assert!(
        query_at(
            &root,
            &format!("SELECT * EXCEPT (date) FROM station_windows_latest WHERE NOT ({station_day}) ORDER BY station, window_start"),
            &env,
        ) == others_before,
        "rows outside the criteria changed"
    );
    // The compaction and the deletion are in the audit log, its head anchored in the
    // bucket.
    let verified = ok_with(
        &["audit", "verify", "--log", &audit_log, "--data", &root],
        &env,
    );
    assert!(verified.contains("anchors match"), "{verified}");
    let log = std::fs::read_to_string(&audit_log).expect("audit log");
    assert!(log.contains("\"kind\":\"compact\"") && log.contains("\"kind\":\"delete\""));
    assert!(!keys_under(&server, "maintained/_audit/anchors").is_empty());
    let reports: Vec<String> = keys_under(&server, "maintained/_deletions");
    assert_eq!(reports.len(), 2, "{reports:?}");
    let json = reports
        .iter()
        .find(|k| k.ends_with(".json"))
        .expect("json report");
    let bytes = runtime
        .block_on(async { bucket.get(&Path::from(json.as_str())).await?.bytes().await })
        .expect("report");
    let report: serde_json::Value = serde_json::from_slice(&bytes).expect("report json");
    assert_eq!(report["actor"], "ops@example.com");
    assert_eq!(report["verified"], true);
    let objects_after = sha256_of_objects(&server, "maintained");
    let changes = report["objects"].as_array().expect("objects");
    assert!(!changes.is_empty());
    for change in changes {
        let object = change["object"].as_str().unwrap();
        assert_eq!(
            change["sha256_before"].as_str(),
            objects_before.get(object).map(String::as_str),
            "{change}"
        );
        assert_eq!(
            change["sha256_after"].as_str(),
            objects_after.get(object).map(String::as_str),
            "{change}"
        );
    }
    let windows_deleted: u64 = changes
        .iter()
        .filter(|c| c["object"].as_str().unwrap().contains("/station_windows/"))
        .map(|c| c["rows_deleted"].as_u64().unwrap())
        .sum();
    assert_eq!(
        windows_deleted, 1440,
        "one station's day of latest windows, compacted"
    );
}

/// `store.server_side_encryption` reaches the store: the objects come back marked
/// encrypted (checked with a signed HEAD through curl, which shows the response headers).
#[test]
fn server_side_encryption_is_passed_to_the_store() {
    let server = ObjectStoreServer::start();
    let mut env = server.env();
    env.push((
        "STATIONFLOW__STORE__SERVER_SIDE_ENCRYPTION".into(),
        "AES256".into(),
    ));
    let case = workspace().join("operators/tests/golden/continuous_line");
    ok_with(
        &[
            "replay",
            &case.join("signals.jsonl").display().to_string(),
            "--context",
            &case.join("context.toml").display().to_string(),
            "--out",
            &format!("s3://{BUCKET}/sealed"),
            "--quiet",
        ],
        &env,
    );
    let keys = keys_under(&server, "sealed/station_windows");
    assert!(!keys.is_empty());
    for key in keys
        .iter()
        .chain(["sealed/dead_letter.jsonl".to_string()].iter())
    {
        let url = format!("{}/{BUCKET}/{}", server.endpoint(), key.replace('=', "%3D"));
        let head = std::process::Command::new("curl")
            .args(["-s", "-I", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!(
                "{}:{}",
                crate::object_store_server::ACCESS_KEY,
                crate::object_store_server::SECRET_KEY
            ))
            .arg(&url)
            .output()
            .expect("curl runs (scripts/test installs it)");
        let headers = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
        assert!(headers.starts_with("http/1.1 200"), "{url}: {headers}");
        assert!(
            headers.contains("x-amz-server-side-encryption: aes256"),
            "{url}: {headers}"
        );
    }

    let mut bad = server.env();
    bad.push((
        "STATIONFLOW__STORE__SERVER_SIDE_ENCRYPTION".into(),
        "rot13".into(),
    ));
    let out = stationflow_with(
        &[
            "query",
            "SELECT 1",
            "--data",
            &format!("s3://{BUCKET}/sealed"),
        ],
        &bad,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server_side_encryption"), "{stderr}");
}
