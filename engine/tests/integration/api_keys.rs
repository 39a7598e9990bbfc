//! `stationflow keys`: a secret printed once, alone on standard output; the key file and
//! the listing never hold it; a revoked key shows as such.

use stationflow_engine::access::keys::KeyFile;

use crate::common::{ok, stationflow};

#[test]
fn keys_are_created_listed_and_revoked_without_their_secrets_showing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keys.json");
    let keys = file.display().to_string();
    let created = stationflow(&[
        "keys",
        "create",
        "--name",
        "grafana",
        "--role",
        "member",
        "--plants",
        "LEEDS,AUSTIN",
        "--expires-in",
        "90d",
        "--keys",
        &keys,
    ]);
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8(created.stdout).expect("utf-8");
    let secret = stdout.strip_suffix('\n').expect("one line");
    assert!(
        !secret.contains('\n') && secret.starts_with("sfk_"),
        "{stdout:?}"
    );
    assert!(String::from_utf8_lossy(&created.stderr).contains("shown this once"));

    let text = std::fs::read_to_string(&file).expect("key file");
    let tail = &secret[secret.len() - 40..];
    assert!(!text.contains(tail), "the key file holds the secret");
    let listing = ok(&["keys", "list", "--keys", &keys]);
    assert!(!listing.contains(tail), "the listing shows the secret");
    assert!(
        listing.contains("grafana\tmember\tLEEDS,AUSTIN\t"),
        "{listing}"
    );
    assert!(listing.trim_end().ends_with("active"), "{listing}");

    let now = chrono::Utc::now();
    let who = KeyFile::load(&file)
        .expect("load")
        .authenticate(secret, Some("grafana"), now)
        .expect("the secret lets grafana in");
    assert_eq!(who.plants, ["LEEDS", "AUSTIN"]);

    // A member without an expiry, a second key of the same name: refused, file unchanged.
    let refused = stationflow(&[
        "keys", "create", "--name", "bi", "--role", "member", "--plants", "LEEDS", "--keys", &keys,
    ]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--expires-in"));
    let again = stationflow(&[
        "keys", "create", "--name", "grafana", "--role", "admin", "--keys", &keys,
    ]);
    assert!(!again.status.success());

    let audit = dir.path().join("audit.jsonl");
    let log = audit.display().to_string();
    ok(&[
        "keys",
        "revoke",
        "grafana",
        "--keys",
        &keys,
        "--audit-log",
        &log,
    ]);
    let made = ok(&[
        "keys",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--keys",
        &keys,
        "--audit-log",
        &log,
    ]);
    // Key changes are in the audit log, never a secret.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let said: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["action"].as_str().unwrap(), l["name"].as_str().unwrap()))
        .collect();
    assert_eq!(said, [("revoke", "grafana"), ("create", "ops")]);
    assert!(lines.iter().all(|l| l["kind"] == "key"));
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(&made.trim()[made.trim().len() - 40..]));
    let listing = ok(&["keys", "list", "--keys", &keys]);
    assert!(listing.contains("\trevoked\n"), "{listing}");
    assert!(KeyFile::load(&file)
        .expect("load")
        .authenticate(secret, None, chrono::Utc::now())
        .is_err());
}
