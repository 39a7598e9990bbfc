//! The audit log: `delete` and `compact` append what they were asked and what they did,
//! hash-chained and anchored under the data root; `audit verify` passes on the log as
//! written, and names the first bad line when a byte is changed or lines are removed.

use crate::common::{ok, replay_sample, stationflow};

#[test]
fn deletions_and_compactions_are_logged_and_tampering_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    replay_sample(&out);
    let out = out.display().to_string();
    let log = dir.path().join("audit.jsonl");
    let log_arg = log.display().to_string();
    ok(&[
        "delete",
        "--plant",
        "AUSTIN",
        "--station",
        "CNC-01",
        "--actor",
        "dpo@example.com",
        "--data",
        &out,
        "--audit-log",
        &log_arg,
    ]);
    ok(&[
        "compact",
        "--data",
        &out,
        "--before",
        "2030-01-01",
        "--audit-log",
        &log_arg,
    ]);
    let text = std::fs::read_to_string(&log).expect("audit log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let kinds: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("delete", "started"),
            ("delete", "done"),
            ("compact", "started"),
            ("compact", "done")
        ]
    );
    assert_eq!(lines[0]["asked"]["actor"], "dpo@example.com");
    assert_eq!(lines[0]["asked"]["station"], "CNC-01");
    let verified = ok(&["audit", "verify", "--log", &log_arg, "--data", &out]);
    assert!(
        verified.contains("4 lines") && verified.contains("anchors match"),
        "{verified}"
    );

    // A byte changed in line 2: the chain breaks at line 3.
    let changed = text.replacen("\"done\"", "\"dine\"", 1);
    std::fs::write(&log, &changed).expect("tamper");
    let failed = stationflow(&["audit", "verify", "--log", &log_arg]);
    assert!(!failed.status.success());
    let why = String::from_utf8_lossy(&failed.stderr);
    assert!(why.contains("line 3"), "{why}");

    // The last line removed: the chain holds, its anchor does not.
    let kept: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&log, kept.join("\n") + "\n").expect("truncate");
    ok(&["audit", "verify", "--log", &log_arg]);
    let failed = stationflow(&["audit", "verify", "--log", &log_arg, "--data", &out]);
    assert!(!failed.status.success());
    let why = String::from_utf8_lossy(&failed.stderr);
    assert!(why.contains("lines were removed"), "{why}");
}
