//! `stationflow serve` over the PostgreSQL protocol, with clients nobody here wrote:
//! Debian's `psql` (the simple protocol, `\d`) and psycopg (the extended protocol with
//! parameters, prepared statements, a server-side cursor). A member of LEEDS sees LEEDS
//! only whatever they send; statements that are not reads get 42501; revoked and expired
//! keys stop mid-connection; an admin's answers equal `stationflow query`; TLS is
//! required where configured; garbage and a thousand dropped connections leave the
//! server serving; every statement is in the audit log, whose chain verifies.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{number, ok, query, replay_sample, serve, Served};

fn psql_at(server: &Served, user: &str, key: &str, sslmode: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname=stationflow sslmode={sslmode} \
             connect_timeout=10 application_name=psql-test",
            server.pg_port()
        ))
        .args([
            "-X",
            "-A",
            "-t",
            "-F",
            ",",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", key)
        .output()
        .expect("psql runs (Debian's postgresql-client)")
}

fn psql(server: &Served, user: &str, key: &str, sql: &str) -> Output {
    psql_at(server, user, key, "disable", sql)
}

/// The rows psql printed, or a panic with its error.
fn rows(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "psql should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn key(keys: &Path, name: &str, role: &str, plants: &[&str]) -> String {
    let k = keys.display().to_string();
    let mut args = vec![
        "keys", "create", "--name", name, "--role", role, "--keys", &k,
    ];
    let plants = plants.join(",");
    if role == "member" {
        args.extend(["--plants", &plants, "--expires-in", "1d"]);
    }
    ok(&args).trim().to_string()
}

/// What the member's statements may never show: AUSTIN's rows.
const ADVERSARIAL: [&str; 14] = [
    "SELECT DISTINCT plant FROM station_windows WHERE plant = 'AUSTIN'",
    "SELECT DISTINCT plant FROM station_windows WHERE plant = 'AUSTIN' OR 1=1",
    "SELECT DISTINCT plant FROM station_windows_latest WHERE plant IN (SELECT 'AUSTIN')",
    "WITH w AS (SELECT * FROM station_windows) SELECT DISTINCT plant FROM w",
    "SELECT plant FROM station_windows UNION SELECT plant FROM downtime_events",
    "SELECT DISTINCT \"plant\" FROM \"public\".\"station_windows\"",
    "SELECT DISTINCT plant FROM stationflow.public.station_windows_files",
    "SELECT DISTINCT plant FROM oee_by_plant_day",
    "SELECT DISTINCT plant FROM oee_by_shift",
    "SELECT DISTINCT plant FROM downtime_events_latest",
    "SELECT DISTINCT plant FROM (SELECT plant, row_number() OVER (PARTITION BY plant) \
     FROM station_windows) t",
    "SELECT DISTINCT a.plant FROM station_windows a JOIN station_windows b \
     ON a.station = b.station",
    "SELECT DISTINCT plant FROM station_windows WHERE EXISTS \
     (SELECT 1 FROM station_windows WHERE plant = 'AUSTIN')",
    "SELECT DISTINCT plant FROM station_windows WHERE \
     1 / (CASE WHEN plant = 'AUSTIN' THEN 0 ELSE 1 END) = 1",
];

#[test]
fn psql_and_psycopg_see_their_plants_only_and_everything_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    replay_sample(&out);
    let keys = dir.path().join("keys.json");
    let member = key(&keys, "leeds-bi", "member", &["LEEDS"]);
    let admin = key(&keys, "ops", "admin", &[]);
    let doomed = key(&keys, "doomed", "member", &["LEEDS"]);
    let audit = dir.path().join("audit.jsonl");
    let server = serve(&out, &keys, &audit, &[]);

    // psql: the member sees LEEDS in every table and view, and never AUSTIN.
    for table in [
        "station_windows",
        "station_windows_latest",
        "downtime_events",
        "downtime_events_latest",
        "oee_by_shift",
        "oee_by_station_day",
        "oee_by_line_day",
        "oee_by_plant_day",
        "oee_by_sku_day",
        "window_sums",
        "window_sums_files",
    ] {
        let sql = format!("SELECT DISTINCT plant FROM {table} ORDER BY plant");
        assert_eq!(
            rows(&psql(&server, "leeds-bi", &member, &sql)),
            ["LEEDS"],
            "{table}"
        );
    }
    for sql in ADVERSARIAL {
        let seen = rows(&psql(&server, "leeds-bi", &member, sql));
        assert!(seen.iter().all(|p| p == "LEEDS"), "{sql}: {seen:?}");
    }
    let catalog = rows(&psql(
        &server,
        "leeds-bi",
        &member,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' \
         ORDER BY table_name",
    ));
    assert!(
        catalog.contains(&"oee_by_plant_day".to_string()),
        "{catalog:?}"
    );
    for (sql, what) in [
        ("SET datafusion.optimizer.max_passes = 0", "42501"),
        ("SET datafusion.execution.target_partitions = 1", "42501"),
        ("COPY (SELECT 1) TO '/tmp/stationflow-copy.csv'", "42501"),
        ("CREATE VIEW mine AS SELECT 1", "42501"),
        ("DROP VIEW station_windows", "42501"),
        (
            "INSERT INTO station_windows_files SELECT * FROM station_windows_files",
            "42501",
        ),
    ] {
        let refused = error(&psql(&server, "leeds-bi", &member, sql));
        assert!(refused.contains("read-only"), "{sql}: {refused}");
        let _ = what;
    }
    let austin = out.join("station_windows/plant=AUSTIN");
    let external = format!(
        "CREATE EXTERNAL TABLE theirs STORED AS PARQUET LOCATION '{}'",
        austin.display()
    );
    let refused = error(&psql(&server, "leeds-bi", &member, &external));
    assert!(refused.contains("read-only"), "{refused}");
    let file_table = format!("SELECT count(*) FROM '{}'", austin.display());
    error(&psql(&server, "leeds-bi", &member, &file_table));
    // After a refused SET, the optimizer and the scope are as they were.
    let after = psql(
        &server,
        "leeds-bi",
        &member,
        "SET datafusion.optimizer.max_passes = 0; SELECT DISTINCT plant FROM station_windows",
    );
    assert!(!String::from_utf8_lossy(&after.stdout).contains("AUSTIN"));

    // A client's statement_timeout shortens the server's limit: 57014 when it runs out.
    let late = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=leeds-bi dbname=stationflow sslmode=disable",
            server.pg_port()
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(["-c", "SET statement_timeout = 1"])
        .args([
            "-c",
            "SELECT count(*) FROM station_windows a JOIN station_windows b ON a.station = b.station",
        ])
        .env("PGPASSWORD", &member)
        .output()
        .expect("psql runs");
    let said = error(&late);
    assert!(
        said.contains("57014") && said.contains("time limit"),
        "{said}"
    );

    // Who the server says you are: the key's name.
    let me = rows(&psql(&server, "leeds-bi", &member, "SELECT current_user"));
    assert_eq!(me, ["leeds-bi"]);

    // psql's own introspection.
    let tables = rows(&psql(&server, "leeds-bi", &member, "\\dt"));
    assert!(
        tables.iter().any(|t| t.contains("station_windows_files")),
        "{tables:?}"
    );
    let described = rows(&psql(&server, "leeds-bi", &member, "\\d station_windows"));
    assert!(
        described.iter().any(|c| c.starts_with("good_qty,")),
        "{described:?}"
    );
    let views = rows(&psql(&server, "leeds-bi", &member, "\\dv"));
    assert!(
        views.iter().any(|v| v.contains("oee_by_plant_day")),
        "{views:?}"
    );

    // An admin sees both plants, and what `stationflow query` sees.
    let rollup = "SELECT plant, production_date, round(oee, 9), good_qty \
                  FROM oee_by_plant_day ORDER BY plant, production_date";
    let served = rows(&psql(&server, "ops", &admin, rollup));
    let local = query(&out, rollup);
    assert_eq!(served.len(), local.len() - 1);
    assert!(served.iter().any(|r| r.starts_with("AUSTIN,")));
    for (s, l) in served.iter().zip(&local[1..]) {
        let s: Vec<&str> = s.split(',').collect();
        assert_eq!(s[..2], [l[0].as_str(), l[1].as_str()]);
        for (a, b) in s[2..].iter().zip(&l[2..]) {
            let same = a == b || (number(a) - number(b)).abs() < 1e-9;
            assert!(same, "{s:?} vs {l:?}");
        }
    }
    // The member's roll-up equals the admin's over LEEDS.
    let leeds = |sql: &str| rows(&psql(&server, "ops", &admin, sql));
    assert_eq!(
        rows(&psql(&server, "leeds-bi", &member, rollup)),
        leeds(&rollup.replace("ORDER BY", "WHERE plant = 'LEEDS' ORDER BY"))
    );

    // A wrong key, an unknown user, a key under another name.
    for (user, secret) in [
        ("leeds-bi", format!("{member}0")),
        ("nobody", member.clone()),
        ("ops", member.clone()),
    ] {
        let refused = error(&psql(&server, user, &secret, "SELECT 1"));
        assert!(
            refused.contains("password authentication failed"),
            "{refused}"
        );
    }

    // psycopg: parameters, prepared statements, a cursor, revocation, expiry.
    let python = std::env::var("STATIONFLOW_READERS_PYTHON").unwrap_or("python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/psycopg_client.py");
    let client = Command::new(python)
        .arg(script)
        .args([
            server.pg_port(),
            "leeds-bi",
            &member,
            "ops",
            &admin,
            "doomed",
            &doomed,
        ])
        .env("STATIONFLOW", env!("CARGO_BIN_EXE_stationflow"))
        .env("STATIONFLOW_KEYS", &keys)
        .env("STATIONFLOW_AUDIT_LOG", dir.path().join("keys-audit.jsonl"))
        .output()
        .expect("python runs");
    assert!(
        client.status.success(),
        "psycopg client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&client.stdout).expect("JSON");
    assert_eq!(
        seen["member_austin_param"],
        serde_json::json!([[0]]),
        "{seen}"
    );
    assert!(
        seen["member_leeds_param"][0][0].as_u64().unwrap() > 0,
        "{seen}"
    );
    assert_eq!(
        seen["member_prepared"],
        serde_json::json!(["LEEDS"]),
        "{seen}"
    );
    assert_eq!(
        seen["member_cursor"],
        serde_json::json!(["LEEDS"]),
        "{seen}"
    );
    let leeds_only: Vec<_> = seen["admin_plants_param"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[0] == "LEEDS")
        .cloned()
        .collect();
    assert_eq!(leeds_only.len(), 1, "{seen}");
    assert_eq!(
        seen["member_plants_param"][0][1].to_string(),
        leeds_only[0][1].as_str().unwrap(),
        "{seen}"
    );
    assert!(
        seen["member_side_channel"][0][0].as_u64().unwrap() > 0,
        "{seen}"
    );
    for refused in ["set_engine", "copy", "create_view", "insert"] {
        assert_eq!(seen[refused]["sqlstate"], "42501", "{refused}: {seen}");
    }
    assert_eq!(seen["set_client"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["show"], serde_json::json!([["renamed"]]), "{seen}");
    assert!(seen["doomed_before"][0][0].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["doomed_after"]["sqlstate"], "28P01", "{seen}");
    assert!(seen["short_before"][0][0].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["short_after"]["sqlstate"], "28P01", "{seen}");
    assert!(
        seen["wrong_key"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{seen}"
    );

    // A 100 MB SQL text is refused with 54000; the server goes on.
    let huge = dir.path().join("huge.sql");
    let mut text = String::with_capacity(100 << 20);
    text.push_str("SELECT count(*) FROM station_windows WHERE station <> '");
    text.push_str(&"x".repeat(100 << 20));
    text.push_str("';\n");
    std::fs::write(&huge, text).expect("write");
    let refused = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=leeds-bi dbname=stationflow sslmode=disable",
            server.pg_port()
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&huge)
        .env("PGPASSWORD", &member)
        .output()
        .expect("psql runs");
    let said = error(&refused);
    assert!(said.contains("at most 1048576"), "{said}");
    std::fs::remove_file(&huge).expect("remove");

    // Garbage on the port, a thousand connections dropped: the server goes on.
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xff; 64][..],
        &[0, 0, 0, 8, 0, 0, 0, 0][..],
    ] {
        let mut s = TcpStream::connect(&server.pg).expect("connect");
        let _ = s.write_all(garbage);
    }
    for _ in 0..1000 {
        drop(TcpStream::connect(&server.pg).expect("connect"));
    }
    assert_eq!(
        rows(&psql(
            &server,
            "leeds-bi",
            &member,
            "SELECT DISTINCT plant FROM station_windows"
        )),
        ["LEEDS"]
    );

    // One connection sees a new replay land, with no restart: the sample's windows,
    // then the one window of a replay of one record.
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        "{\"station\":\"PRESS-01\",\"ts\":\"2026-03-20T10:00:00Z\",\"good\":1}\n",
    )
    .expect("write");
    let replay = format!(
        "\\! {} replay {} --context {} --out {} --quiet > /dev/null",
        env!("CARGO_BIN_EXE_stationflow"),
        extra.display(),
        crate::common::workspace()
            .join("replay-data/context.toml")
            .display(),
        out.display()
    );
    let count = "SELECT count(*) FROM station_windows WHERE station = 'PRESS-01'";
    let same_connection = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=leeds-bi dbname=stationflow sslmode=disable",
            server.pg_port()
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", count, "-c", &replay, "-c", count])
        .env("PGPASSWORD", &member)
        .output()
        .expect("psql runs");
    let counts = rows(&same_connection);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(number(&counts[0]) > 1.0, "{counts:?}");
    assert_eq!(counts[1], "1", "the new replay's one window: {counts:?}");

    // Every statement is in the log, in order, attributed; the chain verifies.
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let statements: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["kind"] == "statement" && l["protocol"] == "postgres")
        .collect();
    let started: Vec<&str> = statements
        .iter()
        .filter(|l| l["status"] == "started")
        .filter_map(|l| l["sql"].as_str())
        .collect();
    let first = started
        .iter()
        .position(|s| s.contains("FROM station_windows ORDER BY plant"))
        .expect("the first statement");
    let second = started
        .iter()
        .position(|s| s.contains("FROM station_windows_latest ORDER BY plant"))
        .expect("the second statement");
    assert!(first < second);
    assert!(started.iter().any(|s| s.contains("max_passes")));
    assert!(
        started
            .iter()
            .any(|s| s.contains("-- parameters: [\"AUSTIN\"]")),
        "{started:?}"
    );
    assert!(statements.iter().any(|l| l["tool"] == "psql-test"));
    assert!(statements.iter().any(|l| l["tool"] == "psycopg-test"));
    assert!(statements.iter().any(|l| l["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("failed: statements are read-only")));
    let auths = lines.iter().filter(|l| l["kind"] == "auth").count();
    assert!(auths >= 30, "{auths} authentications logged");
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "auth" && l["status"].as_str().unwrap().contains("revoked")));
    server.stop();
    let anchors: Vec<u64> = std::fs::read_dir(out.join("_audit/anchors"))
        .expect("anchors")
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .parse()
                .unwrap()
        })
        .collect();
    let logged = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .count() as u64;
    assert_eq!(
        anchors.iter().max(),
        Some(&logged),
        "the head is anchored at shutdown"
    );
    assert!(
        anchors.len() >= 2,
        "{anchors:?}: anchored along the way too"
    );
    let verified = ok(&[
        "audit",
        "verify",
        "--log",
        &audit.display().to_string(),
        "--data",
        &out.display().to_string(),
    ]);
    assert!(verified.contains("anchors match"), "{verified}");
}

#[test]
fn tls_is_required_where_configured_and_plaintext_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    replay_sample(&out);
    let keys = dir.path().join("keys.json");
    let member = key(&keys, "leeds-bi", "member", &["LEEDS"]);
    let (cert, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let audit = dir.path().join("audit.jsonl");
    let (c, k) = (cert.display().to_string(), key_file.display().to_string());
    let server = serve(&out, &keys, &audit, &["--tls-cert", &c, "--tls-key", &k]);

    let sql = "SELECT DISTINCT plant FROM station_windows";
    assert_eq!(
        rows(&psql_at(&server, "leeds-bi", &member, "require", sql)),
        ["LEEDS"]
    );
    let verified = psql_at(
        &server,
        "leeds-bi",
        &member,
        &format!("verify-full sslrootcert={c}"),
        sql,
    );
    assert_eq!(rows(&verified), ["LEEDS"]);
    let plain = error(&psql_at(&server, "leeds-bi", &member, "disable", sql));
    assert!(plain.contains("TLS"), "{plain}");

    let https = Command::new("curl")
        .args(["-sS", "--cacert", &c, "-H", &format!("X-API-Key: {member}")])
        .args(["--data-binary", sql])
        .arg(format!("https://{}/api/v1/sql", server.http))
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&https.stdout).trim(),
        r#"[{"plant":"LEEDS"}]"#,
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    let cleartext = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            &format!("X-API-Key: {member}"),
        ])
        .args(["--data-binary", sql])
        .arg(format!("http://{}/api/v1/sql", server.http))
        .output()
        .expect("curl runs");
    assert!(!String::from_utf8_lossy(&cleartext.stdout).contains("LEEDS"));
    drop(server);

    // Beyond loopback without TLS: refused at start, unless plaintext is allowed.
    let refused = crate::common::stationflow(&[
        "serve",
        "--data",
        &out.display().to_string(),
        "--keys",
        &keys.display().to_string(),
        "--pg-listen",
        "0.0.0.0:0",
        "--http-listen",
        "off",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without TLS"));
}
