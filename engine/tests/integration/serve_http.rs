//! `stationflow serve` over HTTP on the sample: keys let their holders in (and no one
//! else), a member sees their plant only, answers come as JSON, CSV or Arrow, statements
//! that are not reads are refused with 42501, a revoked key stops at its next statement,
//! and every attempt is in the audit log, whose chain verifies.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::common::{ok, query, replay_sample, serve, Served};

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// One HTTP/1.1 request on its own connection; a chunked body is put together.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).expect("write");
    // A server may answer (413) before reading a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = headers[9..12].parse().expect("status");
    let mut body = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

fn sql(server: &Served, key: &str, accept: &str, text: &str) -> Reply {
    request(
        &server.http,
        "POST",
        "/api/v1/sql",
        &[
            ("X-API-Key", key),
            ("Accept", accept),
            ("User-Agent", "serve-test"),
        ],
        text.as_bytes(),
    )
}

#[test]
fn serve_answers_key_holders_their_plants_only_and_logs_it_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    replay_sample(&out);
    let keys = dir.path().join("keys.json");
    let k = keys.display().to_string();
    let member = ok(&[
        "keys",
        "create",
        "--name",
        "leeds-bi",
        "--role",
        "member",
        "--plants",
        "LEEDS",
        "--expires-in",
        "1d",
        "--keys",
        &k,
    ]);
    let member = member.trim();
    let admin = ok(&[
        "keys", "create", "--name", "ops", "--role", "admin", "--keys", &k,
    ]);
    let admin = admin.trim();
    let audit = dir.path().join("audit.jsonl");
    let server = serve(&out, &keys, &audit, &[]);

    let health = request(&server.http, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);

    // No key, a wrong key, a Bearer key.
    let plants = "SELECT DISTINCT plant FROM station_windows ORDER BY plant";
    let none = request(&server.http, "POST", "/api/v1/sql", &[], plants.as_bytes());
    assert_eq!(none.status, 401, "{}", none.text());
    let wrong = sql(&server, &format!("{member}0"), "application/json", plants);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["sqlstate"], "28P01");
    let bearer = request(
        &server.http,
        "POST",
        "/api/v1/sql",
        &[("Authorization", &format!("Bearer {admin}"))],
        plants.as_bytes(),
    );
    assert_eq!(bearer.status, 200, "{}", bearer.text());
    assert_eq!(
        bearer.json(),
        serde_json::json!([{"plant": "AUSTIN"}, {"plant": "LEEDS"}])
    );

    // The member: LEEDS only, in every format, equal to the file holder's filtered query.
    let as_member = sql(&server, member, "application/json", plants);
    assert_eq!(as_member.status, 200, "{}", as_member.text());
    assert!(as_member.headers.contains("content-type: application/json"));
    assert_eq!(as_member.json(), serde_json::json!([{"plant": "LEEDS"}]));
    // Rounded: the member's plan and the filtered one add in different orders.
    let count = "SELECT count(*) AS n, round(sum(good_qty), 6) AS good FROM station_windows_latest";
    let csv = sql(&server, member, "text/csv", count);
    assert_eq!(csv.status, 200);
    let local = query(&out, &format!("{count} WHERE plant = 'LEEDS'"));
    let served: Vec<Vec<String>> = csv
        .text()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(served, local);
    let arrow = sql(
        &server,
        member,
        "application/vnd.apache.arrow.stream",
        plants,
    );
    assert_eq!(arrow.status, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None)
        .expect("an Arrow stream");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 1);

    // Not a read, not SQL, too long.
    let view = sql(
        &server,
        member,
        "application/json",
        "CREATE VIEW v AS SELECT 1",
    );
    assert_eq!(view.status, 403, "{}", view.text());
    assert_eq!(view.json()["sqlstate"], "42501");
    let set = sql(
        &server,
        admin,
        "application/json",
        "SET datafusion.optimizer.max_passes = 0",
    );
    assert_eq!(set.status, 403);
    let bad = sql(&server, member, "application/json", "SELEC 1");
    assert_eq!(bad.status, 400);
    let huge = sql(&server, member, "application/json", &"-".repeat(2 << 20));
    assert_eq!(huge.status, 413);

    // Garbage on the port, a thousand connections opened and dropped, a hundred held
    // open: the server answers the next request as before.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"\0\0\0\0",
    ] {
        let mut stream = TcpStream::connect(&server.http).expect("connect");
        let _ = stream.write_all(garbage);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    for _ in 0..1000 {
        drop(TcpStream::connect(&server.http).expect("connect"));
    }
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&server.http).expect("connect"))
        .collect();
    let again = sql(&server, member, "application/json", plants);
    assert_eq!(again.json(), serde_json::json!([{"plant": "LEEDS"}]));
    drop(held);

    // Revoked: refused at the next statement.
    ok(&["keys", "revoke", "leeds-bi", "--keys", &k]);
    assert_eq!(sql(&server, member, "application/json", plants).status, 401);

    let metrics = request(&server.http, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("stationflow_serve_statements_refused_total 2"),
        "{metrics}"
    );

    // Every attempt is logged, in order, and the chain holds.
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let refused = lines
        .iter()
        .filter(|l| l["kind"] == "auth" && l["status"].as_str().unwrap().starts_with("refused"))
        .count();
    assert_eq!(refused, 2, "the wrong key and the revoked one");
    let statement = lines
        .iter()
        .find(|l| l["kind"] == "statement" && l["sql"] == "CREATE VIEW v AS SELECT 1")
        .expect("the refused statement is logged");
    assert_eq!(statement["who"], "leeds-bi");
    assert_eq!(statement["tool"], "serve-test");
    assert_eq!(statement["protocol"], "http");
    let verified = ok(&["audit", "verify", "--log", &audit.display().to_string()]);
    assert!(verified.contains("holds"), "{verified}");

    // A connection that stays quiet past the idle timeout is closed by the server.
    let quick = serve(
        &out,
        &keys,
        &audit,
        &["--idle-timeout-s", "1", "--statement-timeout-s", "1"],
    );
    let mut idle = TcpStream::connect(&quick.http).expect("connect");
    idle.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the server kept an idle connection: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
