//! `stationflow run` against a real broker: history published to the signals topic gives
//! the same latest windows as `replay` of the same files — in Parquet and on
//! `station.windows` — with bad records on `signals.dlq`; a crash at any point (an abort
//! at each crash point, `kill -9` from outside) and a restart change nothing and write
//! no duplicate row; two processes in one group split the partitions and merge back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use stationflow_engine::kafka::{create_topic, KafkaArgs};
use stationflow_engine::query::{self, OutputFormat};
use stationflow_engine::store::Root;
use stationflow_schemas::alert::{Alert, AlertKind};
use stationflow_schemas::window::StationWindow;

use crate::broker::Broker;
use crate::common::{csv_rows, ok, workspace};
use crate::object_store_server::{ObjectStoreServer, BUCKET};

const PARTITIONS: i32 = 4;

/// 2026-03-09T07:00Z, the minute of the sample's last record.
const SAMPLE_LAST_MINUTE_MS: i64 = 1_773_039_600_000;

/// The sample's stations. Each partition's clock only passes its own records (then
/// follows the wall clock), and Leeds' data ends an hour before Austin's: a trailing
/// record per station at 07:10, given to replay as well, takes every partition past the
/// sample's end, as live data from every station would.
const STATIONS: [&str; 15] = [
    "CNC-01", "CNC-02", "CNC-03", "CNC-04", "EXTR-01", "LINE-A", "MOLD-01", "MOLD-02", "OVEN-01",
    "PACK-01", "PRESS-01", "PRESS-02", "PRESS-03", "WELD-01", "WELD-02",
];

/// A broker with the engine's topics, a settings file, and the output root.
struct Pipeline {
    broker: Broker,
    dir: tempfile::TempDir,
    output: Output,
}

/// Where the engine writes: a folder, or a bucket (with the variables that reach it).
#[derive(Clone)]
enum Output {
    Folder(PathBuf),
    Bucket {
        url: String,
        env: Vec<(String, String)>,
    },
}

impl Pipeline {
    fn new() -> Pipeline {
        Pipeline::with_kafka_settings("")
    }

    /// Output and checkpoints in `server`'s bucket; queued output spools past 1 MB.
    fn with_bucket(server: &ObjectStoreServer) -> Pipeline {
        let url = format!("s3://{BUCKET}/live");
        let settings = format!(
            "[output]\nroot = \"{url}\"\nqueue_memory_mb = 1\n\
             [store]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\n\
             request_timeout_s = 5\nretry_timeout_s = 5\n",
            server.endpoint()
        );
        let env = server.env();
        Pipeline::with_settings("", &settings, Output::Bucket { url, env })
    }

    /// With the compacted context topic `context` (one partition) besides the file.
    fn with_context_topic() -> Pipeline {
        let pipeline = Pipeline::with_kafka_settings("context_topic = \"context\"\n");
        create_topic(
            &pipeline.kafka(),
            "context",
            1,
            &[("cleanup.policy", "compact")],
        )
        .expect("context topic created");
        pipeline
    }

    fn kafka(&self) -> KafkaArgs {
        KafkaArgs {
            brokers: self.broker.address.clone(),
            options: Vec::new(),
        }
    }

    fn with_kafka_settings(extra: &str) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let output = format!(
            "[output]\nroot = \"{}\"\nsums_interval_s = 1\n",
            out.display()
        );
        Pipeline::with_settings_in(dir, extra, &output, Output::Folder(out))
    }

    fn with_settings(extra: &str, output_settings: &str, output: Output) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp dir");
        Pipeline::with_settings_in(dir, extra, output_settings, output)
    }

    /// Output topics (windows, alerts, dead letters) that take records of at most
    /// `max_message_bytes`.
    fn with_small_output_topics(max_message_bytes: usize) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let output = format!("[output]\nroot = \"{}\"\n", out.display());
        let limit = max_message_bytes.to_string();
        let configs = [("max.message.bytes", limit.as_str())];
        Pipeline::with_topics_in(dir, "", &output, Output::Folder(out), &configs)
    }

    fn with_settings_in(
        dir: tempfile::TempDir,
        extra: &str,
        output_settings: &str,
        output: Output,
    ) -> Pipeline {
        Pipeline::with_topics_in(dir, extra, output_settings, output, &[])
    }

    fn with_topics_in(
        dir: tempfile::TempDir,
        extra: &str,
        output_settings: &str,
        output: Output,
        output_topic_configs: &[(&str, &str)],
    ) -> Pipeline {
        let broker = Broker::start();
        let kafka = KafkaArgs {
            brokers: broker.address.clone(),
            options: Vec::new(),
        };
        create_topic(&kafka, "signals", PARTITIONS, &[]).expect("topic created");
        for topic in ["station.windows", "station.alerts", "signals.dlq"] {
            create_topic(&kafka, topic, PARTITIONS, output_topic_configs).expect("topic created");
        }
        let settings = format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"live-test\"\nsession_timeout_ms = 6000\n{extra}\
             [context]\nfile = \"{}\"\n\
             [windows]\nidle_timeout_s = {IDLE_TIMEOUT_S}\n\
             {output_settings}\
             [checkpoint]\ninterval_s = 1\n\
             [metrics]\nlisten = \"\"\n",
            broker.address,
            context().display(),
        );
        std::fs::write(dir.path().join("stationflow.toml"), settings).expect("settings");
        let trailer: String = STATIONS
            .iter()
            .map(|s| {
                format!("{{\"station\":\"{s}\",\"ts\":\"2026-03-09T07:10:00Z\",\"rssi\":-60}}\n")
            })
            .collect();
        std::fs::write(dir.path().join("trailer.jsonl"), trailer).expect("trailer");
        Pipeline {
            broker,
            dir,
            output,
        }
    }

    fn out(&self) -> Output {
        self.output.clone()
    }

    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The spool folders in `spool_dir`: one per running engine, and those left by
    /// engines that were killed until the next one starts.
    fn spools(&self) -> usize {
        std::fs::read_dir(self.spool_dir()).map_or(0, |entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("stationflow-spool-")
                })
                .count()
        })
    }

    fn trailer(&self) -> PathBuf {
        self.dir.path().join("trailer.jsonl")
    }

    /// The sample, then the trailer.
    fn publish_sample(&self) {
        self.publish(&sample());
        self.publish(&self.trailer());
    }

    fn publish(&self, inputs: &Path) {
        ok(&[
            "publish",
            &inputs.display().to_string(),
            "--topic",
            "signals",
            "--brokers",
            &self.broker.address,
        ]);
    }

    /// The audit log every engine of the pipeline appends to.
    fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// Starts `stationflow run`; `env` adds variables (a failpoint, a metrics address).
    fn start(&self, name: &str, env: &[(&str, &str)]) -> Engine {
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_stationflow"))
            .args(["run", "--config"])
            .arg(self.dir.path().join("stationflow.toml"))
            .envs(env.iter().copied())
            .envs(match &self.output {
                Output::Bucket { env, .. } => env.clone(),
                Output::Folder(_) => Vec::new(),
            })
            .env("STATIONFLOW_LOG", "info")
            .env("STATIONFLOW__OUTPUT__SPOOL_DIR", self.spool_dir())
            .env("STATIONFLOW_AUDIT_LOG", self.audit_log())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("stationflow run starts");
        Engine {
            child: Some(child),
            log: log_path,
        }
    }
}

/// The sample's quiet stations close after this much of the partition clock.
const IDLE_TIMEOUT_S: u32 = 5;

fn context() -> PathBuf {
    workspace().join("replay-data/context.toml")
}

fn sample() -> PathBuf {
    workspace().join("replay-data/signals")
}

struct Engine {
    child: Option<Child>,
    log: PathBuf,
}

impl Engine {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's last `lines` lines.
    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then waits for the clean shutdown (every partition checkpointed).
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("engine exits");
        assert!(status.success(), "engine failed:\n{}", self.log());
    }

    /// `kill -9`.
    fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until the process ends by itself (a failpoint's abort).
    fn wait_for_crash(mut self, within: Duration) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("status") {
                assert!(!status.success(), "expected a crash:\n{}", self.log());
                assert!(self.log().contains("failpoint"), "{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "no crash:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("running");
        let status = child.try_wait().expect("status");
        assert!(status.is_none(), "engine exited:\n{}", self.log());
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// (station, window_start) → the latest window's columns, revision and emitted_at left
/// out (they say when and how often, not what).
type Latest = BTreeMap<(String, String), Vec<String>>;

fn sql(output: &Output, text: &str) -> Vec<Vec<String>> {
    let root = match output {
        Output::Folder(root) => root,
        Output::Bucket { url, env } => return sql_through_the_binary(url, env, text),
    };
    let root =
        Root::open_existing(&root.display().to_string(), &Default::default()).expect("output root");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let batches = match runtime.block_on(query::run(&root, text)) {
        Ok(b) => b,
        Err(_) => return Vec::new(), // nothing written yet
    };
    let csv = query::render(&batches, OutputFormat::Csv).expect("csv");
    csv_rows(csv.as_bytes())
}

/// `stationflow query` as CSV rows; none while the root is unreadable or empty.
fn sql_through_the_binary(url: &str, env: &[(String, String)], text: &str) -> Vec<Vec<String>> {
    let out =
        crate::common::stationflow_with(&["query", text, "--data", url, "--format", "csv"], env);
    if !out.status.success() {
        return Vec::new();
    }
    csv_rows(&out.stdout)
}

fn latest(root: &Output) -> Latest {
    let rows = sql(
        root,
        "SELECT * FROM station_windows_latest ORDER BY station, window_start",
    );
    let Some((header, rows)) = rows.split_first() else {
        return Latest::new();
    };
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (station, start) = (col("station"), col("window_start"));
    let skip = [col("revision"), col("emitted_at")];
    rows.iter()
        .map(|r| {
            let kept = r
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, v)| v.clone())
                .collect();
            ((r[station].clone(), r[start].clone()), kept)
        })
        .collect()
}

/// Where the live windows differ from replay's, up to the sample's last minute (live
/// runs on past it). A partition's windows begin at its own first record, so windows
/// without data before a station's first live window may be missing.
fn differences(replay: &Latest, live: &Latest, event_count: usize) -> Vec<String> {
    let end = minute_text(SAMPLE_LAST_MINUTE_MS);
    let mut first_live: BTreeMap<&str, &str> = BTreeMap::new();
    for (station, start) in live.keys() {
        first_live.entry(station).or_insert(start);
    }
    let mut diffs = Vec::new();
    for (key, want) in replay.iter().filter(|(k, _)| k.1 <= end) {
        match live.get(key) {
            Some(got) if got == want => {}
            Some(got) => diffs.push(format!("{key:?}: live {got:?}\n replay {want:?}")),
            None => {
                let before_first = first_live
                    .get(key.0.as_str())
                    .is_some_and(|first| key.1.as_str() < *first);
                if !(before_first && want[event_count] == "0") {
                    diffs.push(format!("{key:?}: missing in live"));
                }
            }
        }
    }
    for key in live
        .keys()
        .filter(|k| k.1 <= end && !replay.contains_key(k))
    {
        diffs.push(format!("{key:?}: only in live"));
    }
    diffs
}

/// A window start as `query` renders it.
fn minute_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Waits until `engine`'s output matches replay's (or fails showing the first differences
/// and the end of the engine's log).
fn wait_for_replay_equality(
    engine: &Engine,
    live_root: &Output,
    replay: &Latest,
    within: Duration,
) {
    let event_count = replay_columns_index("event_count");
    let deadline = Instant::now() + within;
    loop {
        let diffs = differences(replay, &latest(live_root), event_count);
        if diffs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} windows differ from replay; first:\n{}\nthe engine's log ends:\n{}",
            diffs.len(),
            diffs[..diffs.len().min(5)].join("\n"),
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Index of a column in `Latest` rows (the dataset's columns less revision, emitted_at).
fn replay_columns_index(name: &str) -> usize {
    stationflow_schemas::window::WINDOW_COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "revision" | "emitted_at"))
        .position(|c| *c == name)
        .expect(name)
}

fn replay_latest(dir: &Path) -> Latest {
    replay_latest_with(dir, &context(), "replay")
}

/// Replay of the sample and trailer with the context file `context`, into `dir/name`.
fn replay_latest_with(dir: &Path, context: &Path, name: &str) -> Latest {
    let out = dir.join(name);
    // With the live test's idle timeout: the same rule, in event time.
    ok(&[
        "replay",
        &sample().display().to_string(),
        &dir.join("trailer.jsonl").display().to_string(),
        "--context",
        &context.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--idle-timeout-s",
        &IDLE_TIMEOUT_S.to_string(),
        "--quiet",
    ]);
    latest(&Output::Folder(out))
}

/// No `(station, window_start, revision)` twice in the Parquet dataset.
fn assert_no_duplicate_rows(root: &Output) {
    let rows = sql(
        root,
        "SELECT station, window_start, revision, COUNT(*) AS n FROM station_windows \
         GROUP BY station, window_start, revision HAVING COUNT(*) > 1 LIMIT 5",
    );
    assert!(rows.len() <= 1, "duplicate rows: {rows:?}");
}

/// Every record of `topic`, read from the beginning until it stays quiet for 3 s.
fn consume(broker: &str, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "live-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut got = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            got.push(message.expect("message").detach());
            quiet_since = Instant::now();
        }
    }
    got
}

/// The latest revision of each window on `station.windows`, after de-duplicating on
/// `(station, window_start, revision)` as consumers are told to; fails if one such key
/// carries two different windows.
fn topic_latest(broker: &str) -> BTreeMap<(String, i64), StationWindow> {
    let mut seen: BTreeMap<(String, i64, i32), StationWindow> = BTreeMap::new();
    for m in consume(broker, "station.windows") {
        let w: StationWindow =
            serde_json::from_slice(m.payload().expect("payload")).expect("window JSON");
        assert_eq!(m.key(), Some(w.station.as_bytes()), "keyed by station");
        let key = (w.station.to_string(), w.window_start, w.revision);
        if let Some(first) = seen.get(&key) {
            let mut again = w.clone();
            again.emitted_at = first.emitted_at;
            assert_eq!(
                first, &again,
                "one (station, window_start, revision), two windows"
            );
        }
        seen.insert(key, w);
    }
    let mut latest = BTreeMap::new();
    for ((station, start, _), w) in seen {
        latest.insert((station, start), w); // ascending revision: the last one wins
    }
    latest
}

/// The topic's latest windows are the Parquet dataset's latest windows (up to the
/// sample's last minute: beyond it, a crashed run's clock may have gone further).
fn assert_topic_matches_parquet(broker: &str, root: &Output) {
    let mut topic = topic_latest(broker);
    topic.retain(|(_, start), _| *start <= SAMPLE_LAST_MINUTE_MS);
    let rows = sql(
        root,
        &format!(
            "SELECT station, CAST(CAST(window_start AS BIGINT) AS VARCHAR), revision, good_qty, \
             run_s, downtime_s FROM station_windows_latest \
             WHERE CAST(window_start AS BIGINT) <= {SAMPLE_LAST_MINUTE_MS}"
        ),
    );
    assert!(rows.len() > 1);
    for r in &rows[1..] {
        let start: i64 = r[1].parse().expect("ms");
        let w = topic
            .get(&(r[0].clone(), start))
            .unwrap_or_else(|| panic!("{r:?} not on station.windows"));
        let num = |s: &str| s.parse::<f64>().expect("number");
        assert_eq!(w.revision.to_string(), r[2], "{r:?}");
        assert_eq!(
            (w.good_qty, w.run_s, w.downtime_s),
            (num(&r[3]), num(&r[4]), num(&r[5]))
        );
    }
    assert_eq!(
        topic.len(),
        rows.len() - 1,
        "windows on the topic and in Parquet"
    );
}

#[test]
fn live_run_gives_replays_windows_and_dead_letters() {
    let pipeline = Pipeline::new();
    pipeline.publish_sample();
    let mut engine = pipeline.start("run", &[]);
    let replay = replay_latest(pipeline.dir.path());
    wait_for_replay_equality(&engine, &pipeline.out(), &replay, Duration::from_secs(480));
    sums_follow_the_commits(&engine, &pipeline.out());
    engine.assert_running();
    engine.stop();
    assert_no_duplicate_rows(&pipeline.out());
    assert_topic_matches_parquet(&pipeline.broker.address, &pipeline.out());
    sums_match_the_windows(&pipeline.dir.path().join("out"));

    // The sample's bad records, each once, for the reasons replay gives.
    let want = replay_dead_letters_by_reason(pipeline.dir.path());
    let got = dead_letters_by_reason(&pipeline.broker.address);
    assert_eq!(got, want, "dead letters by reason");

    assert_alerts_follow_the_output(&pipeline.broker.address, &pipeline.out());
}

/// While it runs, the engine computes the sums of the days its epochs commit: the
/// sample's first day, long finished, gets fresh sums without a stop.
fn sums_follow_the_commits(engine: &Engine, live: &Output) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let fresh = "SELECT count(*) FROM window_sums_files WHERE date = '2026-03-02'";
    while sql(live, fresh)[1][0] == "0" {
        assert!(
            Instant::now() < deadline,
            "no fresh sums of 2026-03-02 while running; the engine's log ends:\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The live engine, stopped, left fresh `window_sums` for every day it wrote, and the
/// roll-ups over them equal the roll-up of its latest windows by the definition before
/// the sums (live runs on past the sample, so its last day is not replay's).
fn sums_match_the_windows(live: &Path) {
    let days = "SELECT count(DISTINCT plant || date) AS days FROM";
    assert_eq!(
        crate::common::query(live, &format!("{days} window_sums_files")),
        crate::common::query(live, &format!("{days} station_windows_files")),
        "every day has fresh sums"
    );
    let keys = "plant, line, station, production_date";
    let got = crate::common::query(
        live,
        &format!("SELECT * FROM oee_by_station_day ORDER BY {keys}"),
    );
    let reference = crate::common::reference_rollup(keys);
    let want = crate::common::query(live, &format!("{reference} ORDER BY {keys}"));
    crate::common::assert_rows_match(&got, &want, "oee_by_station_day");
}

/// How many of replay's dead letters (in `dir/replay`) have each reason.
fn replay_dead_letters_by_reason(dir: &Path) -> BTreeMap<String, usize> {
    let replay_dead =
        std::fs::read_to_string(dir.join("replay/dead_letter.jsonl")).expect("replay dead letters");
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for line in replay_dead.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        *by_reason
            .entry(v["reason"].as_str().expect("reason").into())
            .or_default() += 1;
    }
    by_reason
}

/// How many dead letters on `signals.dlq` have each reason; each names where it came
/// from and keeps the original bytes.
fn dead_letters_by_reason(broker: &str) -> BTreeMap<String, usize> {
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for m in consume(broker, "signals.dlq") {
        let header = |name: &str| header(&m, name).unwrap_or_else(|| panic!("header {name}"));
        assert_eq!(header("source_topic"), "signals");
        header("source_partition")
            .parse::<i32>()
            .expect("partition");
        header("source_offset").parse::<i64>().expect("offset");
        assert!(m.payload().is_some_and(|p| !p.is_empty()), "original bytes");
        *by_reason.entry(header("reason")).or_default() += 1;
    }
    by_reason
}

/// Stray records sent live between the sample and the trailer (SPEC §2, docs/semantics.md
/// "Hostile input"): each is dead-lettered with its reason and no window changes — the
/// engine ends with replay's windows of the clean sample.
#[test]
fn stray_records_live_change_no_window_and_are_dead_lettered() {
    let strays = crate::hostile_input::stray_records(
        [
            "PRESS-01", "PRESS-02", "PRESS-03", "CNC-01", "CNC-02", "MOLD-01", "WELD-01",
            "WELD-02", "OVEN-01",
        ],
        "2026-03-05T09:00:00.500Z",
    );
    let pipeline = Pipeline::new();
    pipeline.publish(&sample());
    let file = pipeline.dir.path().join("strays.jsonl");
    let lines: Vec<&str> = strays.iter().map(|(line, _)| line.as_str()).collect();
    std::fs::write(&file, lines.join("\n")).expect("strays");
    pipeline.publish(&file);
    pipeline.publish(&pipeline.trailer());
    let engine = pipeline.start("run", &[]);
    let replay = replay_latest(pipeline.dir.path());
    ends_like_replay(&pipeline, engine, &replay, Duration::from_secs(480));
    let mut want = replay_dead_letters_by_reason(pipeline.dir.path());
    for (_, reason) in &strays {
        *want.entry(reason.to_string()).or_default() += 1;
    }
    assert_eq!(
        dead_letters_by_reason(&pipeline.broker.address),
        want,
        "dead letters by reason"
    );
}

/// An engine with nothing to read does not rewrite its partitions' checkpoints every
/// interval (a second here): the takeover checkpoints stay until the clean ones at stop.
#[test]
fn an_idle_engine_leaves_its_checkpoints_alone() {
    let pipeline = Pipeline::new();
    let engine = pipeline.start("idle", &[]);
    wait_for_log(&engine, "partition assigned", PARTITIONS as usize);
    let taken_over = checkpoints(&pipeline.out());
    assert_eq!(taken_over.len(), PARTITIONS as usize);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        checkpoints(&pipeline.out()),
        taken_over,
        "rewritten while idle"
    );
    engine.stop();
    let stopped = checkpoints(&pipeline.out());
    assert_eq!(stopped.len(), PARTITIONS as usize);
    assert!(
        stopped
            .iter()
            .all(|(path, bytes)| taken_over[path] != *bytes),
        "each partition's clean checkpoint written at stop"
    );
}

/// Every checkpoint file under a folder output, by path.
fn checkpoints(output: &Output) -> BTreeMap<PathBuf, Vec<u8>> {
    let Output::Folder(root) = output else {
        panic!("a folder output")
    };
    let mut found = BTreeMap::new();
    let mut folders = vec![root.join("_checkpoints")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("checkpoint folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.insert(path.clone(), std::fs::read(&path).expect("checkpoint"));
            }
        }
    }
    found
}

/// A record's header as text.
fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    let value = m.headers()?.iter().find(|h| h.key == name)?.value?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// `station.alerts` after an uninterrupted run: each downtime span first emitted closed
/// (revision 0 in `downtime_events`) was announced as ended once, after it was announced
/// as started; the sample context's rules fired at their `for_minutes`-th window below
/// the threshold and cleared at a window that no longer met it, alternately.
fn assert_alerts_follow_the_output(broker: &str, root: &Output) {
    let alerts: Vec<Alert> = consume(broker, "station.alerts")
        .iter()
        .map(|m| serde_json::from_slice(m.payload().expect("payload")).expect("alert JSON"))
        .collect();
    let mut started = std::collections::BTreeSet::new();
    let mut ended = Vec::new();
    for a in &alerts {
        match a.kind {
            AlertKind::DowntimeStarted => assert!(
                started.insert((a.station.clone(), a.since)),
                "started twice: {a:?}\n{:#?}",
                alerts
                    .iter()
                    .filter(|b| b.station == a.station && b.rule.is_none())
                    .filter(|b| (b.since - a.since).abs() < 3_600_000)
                    .collect::<Vec<_>>()
            ),
            AlertKind::DowntimeEnded => {
                assert!(started.contains(&(a.station.clone(), a.since)), "{a:?}");
                if a.reason.as_deref() != Some("retracted") {
                    ended.push((a.station.clone(), a.since));
                }
            }
            _ => {}
        }
    }
    let mut first_emitted: Vec<(String, i64)> = sql(
        root,
        "SELECT station, CAST(CAST(\"start\" AS BIGINT) AS VARCHAR) FROM downtime_events \
         WHERE revision = 0",
    )[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("ms")))
        .collect();
    first_emitted.sort();
    ended.sort();
    assert!(!ended.is_empty());
    assert_eq!(
        ended, first_emitted,
        "downtime_ended alerts and first-emitted spans"
    );

    let mut firing: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut fired = 0;
    for a in alerts.iter().filter(|a| a.rule.is_some()) {
        let rule = a.rule.clone().expect("rule");
        let (threshold, for_minutes) = match rule.as_str() {
            "low-oee-leeds" => (0.4, 10),
            "press-03-stopped" => (60.0, 5),
            other => panic!("unknown rule {other}"),
        };
        let was = firing.entry((a.station.clone(), rule.clone())).or_default();
        let at = a.window_start.expect("window");
        match a.kind {
            AlertKind::RuleFired => {
                assert!(!*was, "fired twice: {a:?}");
                assert_eq!(at - a.since, (for_minutes - 1) * 60_000, "{a:?}");
                let value = a.value.expect("value");
                assert!(
                    if rule == "low-oee-leeds" {
                        value < threshold
                    } else {
                        value >= threshold
                    },
                    "{a:?}"
                );
                fired += 1;
            }
            AlertKind::RuleCleared => {
                assert!(*was, "cleared without firing: {a:?}");
                assert_eq!(at, a.since);
            }
            _ => unreachable!(),
        }
        *was = a.kind == AlertKind::RuleFired;
    }
    let rules_fired: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::RuleFired)
        .filter_map(|a| a.rule.as_deref())
        .collect();
    assert_eq!(
        rules_fired.len(),
        2,
        "both sample rules fire: {rules_fired:?}"
    );
    assert!(fired >= 2);
}

#[test]
fn crashes_at_any_point_and_restarts_change_nothing() {
    let pipeline = Pipeline::new();
    pipeline.publish_sample();
    let replay = replay_latest(pipeline.dir.path());
    // An abort at each crash point in turn, each run resuming the last one's checkpoints.
    for (i, failpoint) in [
        "parquet-file-written:3",
        "epoch-files-written:2",
        "epoch-flushed:3",
    ]
    .iter()
    .enumerate()
    {
        let engine = pipeline.start(
            &format!("crash-{i}"),
            &[("STATIONFLOW_FAILPOINT", failpoint)],
        );
        engine.wait_for_crash(Duration::from_secs(120));
    }
    // kill -9 from outside while records are being applied.
    let engine = pipeline.start("killed", &[]);
    std::thread::sleep(Duration::from_secs(10));
    engine.kill();
    // Each engine removed the spool of the one that crashed before it; the killed
    // engine's is left.
    assert_eq!(pipeline.spools(), 1);

    let engine = pipeline.start("final", &[]);
    wait_for_log(&engine, "removed a spool left by a process", 1);
    ends_like_replay(&pipeline, engine, &replay, Duration::from_secs(480));
    assert_eq!(
        pipeline.spools(),
        0,
        "the last engine removed the killed one's spool and its own"
    );
}

/// Waits for `engine`'s output to equal `replay`, stops it, and checks the Parquet
/// dataset has no duplicate row and the topic's latest windows are the dataset's.
fn ends_like_replay(pipeline: &Pipeline, mut engine: Engine, replay: &Latest, within: Duration) {
    wait_for_replay_equality(&engine, &pipeline.out(), replay, within);
    engine.assert_running();
    engine.stop();
    assert_no_duplicate_rows(&pipeline.out());
    assert_topic_matches_parquet(&pipeline.broker.address, &pipeline.out());
}

#[test]
fn two_processes_share_the_partitions_and_hand_them_back() {
    let pipeline = Pipeline::new();
    let mut a = pipeline.start("a", &[]);
    wait_for_log(&a, "partition assigned", 4);
    // The sample arrives over ~12 s while a second engine joins and leaves.
    let mut publish = Command::new(env!("CARGO_BIN_EXE_stationflow"))
        .arg("publish")
        .arg(sample())
        .args(["--topic", "signals", "--rate", "14000", "--brokers"])
        .arg(&pipeline.broker.address)
        .stdout(Stdio::null())
        .spawn()
        .expect("publish starts");
    std::thread::sleep(Duration::from_secs(2));
    let mut b = pipeline.start("b", &[]);
    wait_for_log(&b, "partition assigned", 1);
    std::thread::sleep(Duration::from_secs(3));
    b.assert_running();
    b.stop();
    assert!(publish.wait().expect("publish ends").success());
    pipeline.publish(&pipeline.trailer());
    // `a` takes every partition back, from the checkpoints `b` left.
    let replay = replay_latest(pipeline.dir.path());
    wait_for_replay_equality(&a, &pipeline.out(), &replay, Duration::from_secs(480));
    a.assert_running();
    let log = a.log();
    a.stop();
    assert!(log.matches("partition assigned").count() >= 8, "{log}");
    assert_no_duplicate_rows(&pipeline.out());
    assert_topic_matches_parquet(&pipeline.broker.address, &pipeline.out());
}

fn wait_for_log(engine: &Engine, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.log().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {needle:?}:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// MOLD-01 at 9.00 a minute idle from Sunday 20:00 UTC: the last day of the sample, so
/// inside the allowed lateness when it changes.
const MOLD_COST_KEY: &str = "stations/MOLD-01@2026-03-08T20:00Z";
const MOLD_COST_JSON: &str = r#"{"kind": "stations", "code": "MOLD-01", "plant": "AUSTIN",
    "line": "A2", "shift_pattern": "3x8", "all_shift_time_planned": true,
    "ideal_cycle_s": 12.0, "downtime_threshold_s": 300, "idle_cost_per_minute": 9.0,
    "valid_from": "2026-03-08T20:00:00Z"}"#;
/// A cleaning stop entered after the fact.
const LINE_A_STOP_KEY: &str = "planned_stops/LINE-A@2026-03-08T22:00Z";
const LINE_A_STOP_JSON: &str = r#"{"kind": "planned_stops", "station": "LINE-A",
    "start": "2026-03-08T22:00:00Z", "end": "2026-03-08T23:00:00Z", "reason": "CLEAN"}"#;

/// Writes records to the context topic: (key, value or `None` for a tombstone, Kafka
/// timestamp).
fn produce_context(pipeline: &Pipeline, records: &[(&str, Option<&str>, i64)]) {
    use rdkafka::producer::BaseRecord;
    let mut producer = stationflow_engine::sinks::kafka::KafkaSinkConfig::new(&pipeline.kafka())
        .build()
        .expect("producer");
    for (key, value, ts) in records {
        let mut record = BaseRecord::<str, [u8]>::to("context")
            .key(key)
            .timestamp(*ts);
        if let Some(value) = value {
            record = record.payload(value.as_bytes());
        }
        producer.send_record(record).expect("queued");
    }
    producer.finish(Duration::from_secs(30)).expect("delivered");
}

/// The sample's context file with `extra` entities appended — each as the context
/// topic carries it, turned into TOML — as a file in the test dir.
fn context_with(pipeline: &Pipeline, name: &str, extra: &[&str]) -> PathBuf {
    let mut text = std::fs::read_to_string(context()).expect("sample context");
    for json in extra {
        let mut entity: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).expect("entity JSON");
        let kind = entity.remove("kind").expect("kind");
        let table = serde_json::json!({ kind.as_str().expect("kind"): [entity] });
        text.push('\n');
        text.push_str(&toml::to_string(&table).expect("entity as TOML"));
    }
    let path = pipeline.dir.path().join(name);
    std::fs::write(&path, text).expect("context file");
    path
}

#[test]
fn context_topic_changes_revise_windows() {
    let pipeline = Pipeline::with_context_topic();
    let now = stationflow_engine::driver::live::wall_ms();
    // Read at start: a station version, and a record that names an unknown plant.
    produce_context(
        &pipeline,
        &[
            (MOLD_COST_KEY, Some(MOLD_COST_JSON), now),
            (
                "stations/NOPE",
                Some(r#"{"kind": "stations", "code": "NOPE", "plant": "MARS"}"#),
                now,
            ),
        ],
    );
    pipeline.publish_sample();
    let mut engine = pipeline.start("run", &[]);
    let dir = pipeline.dir.path();
    let plain = replay_latest(dir);
    let with_cost = replay_latest_with(
        dir,
        &context_with(&pipeline, "cost.toml", &[MOLD_COST_JSON]),
        "replay-cost",
    );
    assert_ne!(plain, with_cost, "the station version changes windows");
    wait_for_replay_equality(
        &engine,
        &pipeline.out(),
        &with_cost,
        Duration::from_secs(480),
    );

    // Followed: a stop entered after the fact, and the station version withdrawn (its
    // tombstone dated before the version began: withdrawn altogether).
    let with_stop = replay_latest_with(
        dir,
        &context_with(&pipeline, "stop.toml", &[LINE_A_STOP_JSON]),
        "replay-stop",
    );
    assert_ne!(plain, with_stop, "the planned stop changes windows");
    let before_version = 1_772_996_400_000; // 2026-03-08T19:00Z
    produce_context(
        &pipeline,
        &[
            (LINE_A_STOP_KEY, Some(LINE_A_STOP_JSON), now),
            (MOLD_COST_KEY, None, before_version),
        ],
    );
    wait_for_replay_equality(
        &engine,
        &pipeline.out(),
        &with_stop,
        Duration::from_secs(120),
    );
    engine.assert_running();
    let log = engine.log();
    engine.stop();
    assert!(log.contains("context changed"), "{log}");

    // Changed while no engine ran: the restored partitions recompute what it touches.
    produce_context(&pipeline, &[(LINE_A_STOP_KEY, None, before_version)]);
    let engine = pipeline.start("restarted", &[]);
    ends_like_replay(&pipeline, engine, &plain, Duration::from_secs(180));

    let refused: Vec<_> = consume(&pipeline.broker.address, "signals.dlq")
        .into_iter()
        .filter(|m| header(m, "source_topic").as_deref() == Some("context"))
        .collect();
    // Refused again at each start while it stays on the topic: one source record.
    let sources: std::collections::BTreeSet<_> =
        refused.iter().map(|m| header(m, "source_offset")).collect();
    assert_eq!(
        sources.len(),
        1,
        "the record naming plant MARS: {refused:?}"
    );
    let detail = header(&refused[0], "detail").expect("detail header");
    assert!(detail.contains("plant `MARS` is not defined"), "{detail}");

    // Every context change is in the audit log, before it took effect, and the chain
    // and its anchors under the output root verify.
    let audit = std::fs::read_to_string(pipeline.audit_log()).expect("audit log");
    let changes: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|l: &serde_json::Value| l["kind"] == "context")
        .collect();
    let said = |key: &str, status: &str| {
        changes
            .iter()
            .filter(|c| c["key"] == key && c["status"].as_str().unwrap_or("").starts_with(status))
            .count()
    };
    assert_eq!(said(LINE_A_STOP_KEY, "applied"), 1, "{changes:?}");
    assert_eq!(
        said(MOLD_COST_KEY, "applied"),
        1,
        "its tombstone, followed: {changes:?}"
    );
    assert_eq!(
        said("stations/NOPE", "refused: "),
        2,
        "refused at each start: {changes:?}"
    );
    let starts = changes
        .iter()
        .filter(|c| c["source"] == "topic" && c["status"] == "read to its end")
        .count();
    assert_eq!(starts, 2, "{changes:?}");
    let Output::Folder(out) = pipeline.out() else {
        unreachable!("a folder")
    };
    let verified = ok(&[
        "audit",
        "verify",
        "--log",
        &pipeline.audit_log().display().to_string(),
        "--data",
        &out.display().to_string(),
    ]);
    assert!(verified.contains("anchors match"), "{verified}");
}

/// The store goes away for a minute while the engine runs: output waits in the queue
/// (spooled past 1 MB), checkpoints wait behind it, and when the store is back the
/// bucket holds exactly what replay gives, with no duplicate row.
#[test]
fn an_object_store_outage_during_run_loses_and_duplicates_nothing() {
    let mut server = ObjectStoreServer::start();
    let pipeline = Pipeline::with_bucket(&server);
    pipeline.publish_sample();
    let replay = replay_latest(pipeline.dir.path());
    let engine = pipeline.start("run", &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let written = || sql(&pipeline.out(), "SELECT COUNT(*) FROM station_windows");
    while written().get(1).is_none_or(|row| row[0] == "0") {
        assert!(Instant::now() < deadline, "no output:\n{}", engine.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    server.stop();
    std::thread::sleep(Duration::from_secs(60));
    let mut engine = engine;
    engine.assert_running();
    let log = engine.log();
    assert!(log.contains("the object store refused output"), "{log}");
    assert!(log.contains("spooling to disk"), "{log}");
    server.resume();
    wait_for_log(&engine, "the object store takes output again", 1);
    ends_like_replay(&pipeline, engine, &replay, Duration::from_secs(480));
}

/// A record whose dead letter is over the producer's size limit (the original was 1 MB
/// and the headers took it over) does not stop the engine: it reaches `signals.dlq` cut
/// short, and the records after it are processed.
/// Waits until a window past the sample's end (the trailer's) is on the windows topic:
/// the engine read on past `what`.
fn wait_for_the_trailers_windows(
    pipeline: &Pipeline,
    engine: &Engine,
    deadline: Instant,
    what: &str,
) {
    loop {
        let windows = topic_latest(&pipeline.broker.address);
        if windows
            .keys()
            .any(|(_, start)| *start >= SAMPLE_LAST_MINUTE_MS)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no window after {what}; engine log:\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Output topics that take at most 20,000 bytes a record (the broker's
/// `max.message.bytes`, read at start): a dead letter and a window over it go to
/// `signals.dlq` cut to fit, with `truncated_from`, and the engine goes on.
#[test]
fn records_over_the_output_topics_limit_are_cut_to_fit() {
    const LIMIT: usize = 20_000;
    let pipeline = Pipeline::with_small_output_topics(LIMIT);
    let mut lines = String::new();
    let big = format!(
        "{{\"station\":\"PRESS-01\",\"ts\":\"2026-03-09T07:00:00Z\",\"note\":\"{}",
        "x".repeat(30_000)
    );
    lines += &big;
    lines += "\n";
    // A minute with a hundred long error codes: its window is over the limit.
    for i in 0..100 {
        lines += &format!(
            "{{\"station\":\"PRESS-02\",\"ts\":\"2026-03-09T07:01:{:02}.{:03}Z\",\"error_code\":\"E-{i}-{}\"}}\n",
            i / 2,
            (i % 2) * 500,
            "y".repeat(240)
        );
    }
    let strays = pipeline.dir.path().join("strays.jsonl");
    std::fs::write(&strays, lines).expect("strays");
    pipeline.publish(&strays);
    pipeline.publish(&pipeline.trailer());
    let engine = pipeline.start("run", &[]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let (dead_letter, window) = loop {
        let dlq = consume(&pipeline.broker.address, "signals.dlq");
        let cut = |reason: &str| {
            dlq.iter()
                .find(|m| {
                    header(m, "truncated_from").is_some()
                        && header(m, "reason").as_deref() == Some(reason)
                })
                .cloned()
        };
        if let (Some(d), Some(w)) = (cut("malformed_json"), cut("too_large")) {
            break (d, w);
        }
        assert!(
            Instant::now() < deadline,
            "no cut dead letters; engine log:\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(
        header(&dead_letter, "truncated_from"),
        Some(big.len().to_string())
    );
    let kept = dead_letter.payload().map_or(0, <[u8]>::len);
    assert!(kept > 10_000 && kept < LIMIT, "{kept} bytes kept");
    assert_eq!(
        header(&window, "source_topic").as_deref(),
        Some("station.windows")
    );
    assert_eq!(window.key(), Some(&b"PRESS-02"[..]));
    let whole: usize = header(&window, "truncated_from")
        .and_then(|n| n.parse().ok())
        .expect("length");
    assert!(whole > LIMIT, "{whole}");
    assert!(window.payload().map_or(0, <[u8]>::len) < LIMIT);
    wait_for_the_trailers_windows(&pipeline, &engine, deadline, "the strays");
    assert!(
        engine.log().contains("output topics take smaller records"),
        "{}",
        engine.log_tail(40)
    );
    assert!(
        !engine.log().contains("Error:"),
        "the engine failed:\n{}",
        engine.log_tail(40)
    );
    engine.stop();
}

#[test]
fn a_record_its_outputs_refuse_does_not_wedge_the_engine() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let pipeline = Pipeline::new();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &pipeline.broker.address)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    let big = format!(
        "{{\"station\":\"PRESS-01\",\"ts\":\"2026-03-09T07:00:00Z\",\"note\":\"{}",
        "x".repeat(999_800)
    );
    producer
        .send(
            BaseRecord::<str, str>::to("signals")
                .key("PRESS-01")
                .payload(&big),
        )
        .expect("produce the big record");
    producer.flush(Duration::from_secs(30)).expect("flush");
    pipeline.publish(&pipeline.trailer());
    let engine = pipeline.start("run", &[]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let truncated = loop {
        let found = consume(&pipeline.broker.address, "signals.dlq")
            .into_iter()
            .find(|m| header(m, "truncated_from").is_some());
        if let Some(m) = found {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no truncated dead letter; engine log:\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(
        header(&truncated, "reason").as_deref(),
        Some("malformed_json")
    );
    assert_eq!(
        header(&truncated, "truncated_from").as_deref(),
        Some(big.len().to_string().as_str())
    );
    assert_eq!(truncated.payload().map(<[u8]>::len), Some(64 << 10));
    // The trailer after it is read: its windows reach the topic.
    wait_for_the_trailers_windows(&pipeline, &engine, deadline, "the big record");
    assert!(
        !engine.log().contains("Error:"),
        "the engine failed:\n{}",
        engine.log_tail(40)
    );
    engine.stop();
}
