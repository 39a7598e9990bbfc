use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn stationflow(args: &[&str]) -> Output {
    stationflow_with(args, &[])
}

/// Runs stationflow with extra environment variables (an object store's address and keys).
/// Its audit log, unless the test names one, is a file of its own in a temporary folder
/// (not the working directory, which is the source tree).
pub fn stationflow_with(args: &[&str], env: &[(String, String)]) -> Output {
    let audit = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_stationflow"))
        .args(args)
        .env("STATIONFLOW_AUDIT_LOG", audit.path().join("audit.jsonl"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("stationflow runs")
}

/// Runs stationflow and insists it succeeded; returns stdout.
pub fn ok(args: &[&str]) -> String {
    ok_with(args, &[])
}

/// `ok` with extra environment variables.
pub fn ok_with(args: &[&str], env: &[(String, String)]) -> String {
    let out = stationflow_with(args, env);
    assert!(
        out.status.success(),
        "stationflow {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn replay(inputs: &[&Path], context: &Path, out: &Path) -> String {
    replay_with(inputs, context, out, &[])
}

/// `replay` with more options (`--threads 3`, say).
pub fn replay_with(inputs: &[&Path], context: &Path, out: &Path, options: &[&str]) -> String {
    let mut args: Vec<String> = vec!["replay".into()];
    args.extend(options.iter().map(|o| o.to_string()));
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend([
        "--context".into(),
        context.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&refs)
}

/// `replay` of the sample week (`replay-data/`) into `out`; its summary.
pub fn replay_sample(out: &Path) -> String {
    replay_sample_with(out, &[])
}

/// `replay_sample` with more options.
pub fn replay_sample_with(out: &Path, options: &[&str]) -> String {
    let data = workspace().join("replay-data");
    replay_with(
        &[&data.join("signals")],
        &data.join("context.toml"),
        out,
        options,
    )
}

/// `stationflow query` as CSV rows (header first).
pub fn query(out: &Path, sql: &str) -> Vec<Vec<String>> {
    query_at(&out.display().to_string(), sql, &[])
}

/// `stationflow query` over any root (a folder, `s3://…`) as CSV rows (header first).
pub fn query_at(root: &str, sql: &str, env: &[(String, String)]) -> Vec<Vec<String>> {
    let text = ok_with(&["query", sql, "--data", root, "--format", "csv"], env);
    csv_rows(text.as_bytes())
}

/// The physical plan in the rows `EXPLAIN` answers with.
pub fn physical_plan(explained: &[Vec<String>]) -> String {
    explained
        .iter()
        .find(|row| row[0] == "physical_plan")
        .map(|row| row[1].clone())
        .expect("a physical plan")
}

/// CSV text as rows of cells, the header row first.
pub fn csv_rows(text: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text)
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_string).collect())
        .collect()
}

pub fn number(cell: &str) -> f64 {
    if cell.is_empty() {
        f64::NAN
    } else {
        cell.parse()
            .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
    }
}

/// A running `stationflow serve` and the addresses of its fronts; killed when dropped.
pub struct Served {
    pub child: Child,
    /// `host:port` of the PostgreSQL front.
    pub pg: String,
    /// `host:port` of the HTTP front.
    pub http: String,
}

impl Served {
    /// The port of the PostgreSQL front.
    pub fn pg_port(&self) -> &str {
        self.pg.rsplit(':').next().expect("port")
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to end.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let status = self.child.wait().expect("serve ends");
        assert!(status.success(), "serve ended with {status}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `stationflow serve` on `out` with both fronts on free loopback ports (`extra`
/// flags after), and waits until it says where they listen.
pub fn serve(out: &Path, keys: &Path, audit: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stationflow"))
        .args([
            "serve",
            "--pg-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(out)
        .arg("--keys")
        .arg(keys)
        .arg("--audit-log")
        .arg(audit)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let (mut pg, mut http) = (String::new(), String::new());
    while pg.is_empty() || http.is_empty() {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            let n = stderr.read(&mut byte).expect("read");
            assert_eq!(
                n,
                1,
                "serve ended early: {}",
                String::from_utf8_lossy(&line)
            );
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).expect("utf-8");
        let address = |scheme: &str| {
            let rest = line.split(scheme).nth(1)?;
            Some(rest.split(['/', ' ', '\n']).next()?.to_string())
        };
        if let Some(a) = address("postgres://") {
            pg = a;
        } else if let Some(a) = address("https://").or_else(|| address("http://")) {
            http = a;
        }
    }
    // Whatever it says later goes nowhere, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
    });
    Served { child, pg, http }
}

/// `station_windows_latest` as it was defined before `window_sums`: the reference the
/// views are compared with.
pub fn reference_latest() -> String {
    format!(
        "SELECT {}, date FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, \
         window_start ORDER BY revision DESC) AS rn FROM station_windows) WHERE rn = 1",
        stationflow_schemas::window::WINDOW_COLUMNS.join(", ")
    )
}

/// `downtime_events_latest` as it was defined before the events' day classes.
pub fn reference_events_latest() -> String {
    let columns = stationflow_schemas::window::EVENT_COLUMNS.map(|c| format!("\"{c}\""));
    format!(
        "SELECT {}, date FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, \
         \"start\" ORDER BY revision DESC) AS rn FROM downtime_events) \
         WHERE rn = 1 AND reason <> 'retracted'",
        columns.join(", ")
    )
}

/// A roll-up by `keys` as the `oee_by_*` views were defined before `window_sums`.
pub fn reference_rollup(keys: &str) -> String {
    format!(
        "SELECT {keys}, {} FROM ({}) GROUP BY {keys}",
        stationflow_engine::query::ROLLUP_MEASURES,
        reference_latest()
    )
}

/// Rows of CSV cells equal, numbers to 1e-9 (sums added in another order differ in
/// the last bits).
pub fn assert_rows_match(got: &[Vec<String>], want: &[Vec<String>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (a, b) in got.iter().zip(want).skip(1) {
        for (x, y) in a.iter().zip(b) {
            let same = match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                _ => x == y,
            };
            assert!(same, "{what}: {a:?} != {b:?}");
        }
    }
}
