//! What the fuzz targets run, and the invariants they assert. Each target hands its bytes
//! to one function here; a panic (an assertion or a bug) is what libFuzzer reports.
//!
//! - `signal_files`: JSON Lines, long CSV and long rows (what the engine's Parquet reader
//!   yields) read through `stationflow_schemas::reader`, chosen by the first byte.
//! - `context`: context files (TOML, JSON) and context-topic records, then a short run of
//!   the core on every station of a context that loads.
//! - `station_flow`: `StationFlow` driven by an arbitrary sequence of records, advances,
//!   wall-clock moves, snapshots and context changes.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use stationflow_operators::Emitted;
use stationflow_operators::{FlowConfig, FlowSnapshot, Now, Outcome, StationFlow};
use stationflow_schemas::context_topic::{ContextTopic, TopicRecord};
use stationflow_schemas::reader::{
    CsvRows, Item, JsonLines, LongReader, RecordReader, Row, RowSource, SourceError,
};
use stationflow_schemas::signal::{decode_json, Reading, SignalRecord, MAX_QUANTITY};
use stationflow_schemas::Context;

mod checks;
mod input;

pub use checks::{check_event, check_record, check_window};
use input::Input;

/// 2026-03-02T08:00:00Z, a Monday: the start of the fuzzed flow's shift.
const BASE: i64 = 1_772_438_400_000;

// ---------------------------------------------------------------------------------------
// Signal files

pub fn signal_files(data: &[u8]) {
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    match format % 3 {
        0 => json_lines(text),
        1 => csv_file(text),
        _ => long_rows(text),
    }
}

fn json_lines(text: &[u8]) {
    let mut reader = JsonLines::new(Box::new(Cursor::new(text.to_vec())), Path::new("f.jsonl"));
    read_all(&mut reader, text, |item, original| {
        // Whatever path read the line (the in-buffer fast path or not), the record is
        // what the payload decoder makes of its text.
        let alone = decode_json(original, None, None);
        assert_eq!(
            item.decoded().map_err(|r| r.reason),
            alone.as_ref().map_err(|r| r.reason),
            "line {} read differently from its text",
            item.position.line
        );
        if let Ok(record) = item.decoded() {
            payload_round_trips(record);
        }
    });
}

fn csv_file(text: &[u8]) {
    let rows = match CsvRows::new(Box::new(Cursor::new(text.to_vec())), Path::new("f.csv")) {
        Ok(rows) => rows,
        Err(SourceError::Format { message, .. }) => {
            assert!(!message.is_empty());
            return;
        }
        Err(other) => panic!("a CSV in memory failed to read: {other}"),
    };
    let mut reader = LongReader::new(rows, "f.csv".into());
    read_all(&mut reader, text, |_, _| {});
}

/// Rows as a Parquet file's columns give them: any text in each of the four columns.
fn long_rows(text: &[u8]) {
    let rows: Vec<Row> = text
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<String> = line
                .split(|&b| b == b'\t')
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            match <[String; 4]>::try_from(fields) {
                Ok([station, ts, signal, value]) => Row::Values {
                    line: i as u64 + 1,
                    station,
                    ts,
                    signal,
                    value,
                },
                Err(fields) => Row::Malformed {
                    line: i as u64 + 1,
                    text: fields.join("\t"),
                    message: "not four fields".into(),
                    reason: stationflow_schemas::RejectReason::MalformedJson,
                },
            }
        })
        .collect();
    let mut reader = LongReader::new(Rows(rows.into_iter()), "f.parquet".into());
    read_all(&mut reader, text, |_, _| {});
}

struct Rows(std::vec::IntoIter<Row>);

impl RowSource for Rows {
    fn next_row(&mut self) -> Result<Option<Row>, SourceError> {
        Ok(self.0.next())
    }
}

/// Reads every record: positions rise and stay within the input's `lines`, the original
/// text is no longer than the input it came from (rows joined by newlines), and every
/// decoded record keeps the limits every source shares.
fn read_all(reader: &mut dyn RecordReader, text: &[u8], mut also: impl FnMut(&Item, &[u8])) {
    let lines = text.split(|&b| b == b'\n').count() as u64;
    let mut item = Item::default();
    let mut last_line = 0;
    while reader
        .read_into(&mut item)
        .expect("reading memory cannot fail")
    {
        let line = item.position.line;
        assert!(
            line > last_line && line <= lines,
            "line {line} after {last_line}"
        );
        last_line = line;
        let original = reader.original(&item);
        assert!(
            original.len() <= text.len() * 4,
            "{} bytes of text",
            original.len()
        );
        if let Ok(record) = item.decoded() {
            check_record(record);
        }
        also(&item, original);
    }
}

/// What `publish` sends for a record decodes to the same record.
fn payload_round_trips(record: &SignalRecord) {
    let payload = record.to_payload_json();
    let again = decode_json(payload.as_bytes(), None, None)
        .unwrap_or_else(|e| panic!("payload {payload} of a decoded record is refused: {e}"));
    let mut want = record.clone();
    want.unknown_keys = 0;
    assert_eq!(again, want, "payload {payload}");
}

// ---------------------------------------------------------------------------------------
// Context files and the context topic

pub fn context(data: &[u8]) {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    match format % 3 {
        0 => {
            if let Ok(context) = Context::from_toml_str(&String::from_utf8_lossy(rest), "fuzz") {
                run_briefly(context);
            }
        }
        1 => {
            if let Ok(context) = Context::from_json_str(&String::from_utf8_lossy(rest), "fuzz") {
                run_briefly(context);
            }
        }
        _ => context_topic(rest),
    }
}

/// The sample plant's context, the base the topic's records change.
fn sample_context() -> &'static Context {
    static SAMPLE: OnceLock<Context> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        Context::from_toml_str(include_str!("../../replay-data/context.toml"), "sample")
            .expect("the sample context loads")
    })
}

/// Records separated by 0x1d; in each, the timestamp (8 bytes), then key and value
/// separated by 0x1e (no separator: a tombstone). The first half loads as at start-up,
/// the rest apply one by one as the live engine follows the topic.
fn context_topic(data: &[u8]) {
    let parts: Vec<(Vec<u8>, Option<Vec<u8>>, i64)> = data
        .split(|&b| b == 0x1d)
        .map(|part| {
            let mut input = Input::new(part);
            let ts = input.i64();
            let rest = input.rest();
            match rest.iter().position(|&b| b == 0x1e) {
                Some(i) => (rest[..i].to_vec(), Some(rest[i + 1..].to_vec()), ts),
                None => (rest.to_vec(), None, ts),
            }
        })
        .collect();
    let records: Vec<TopicRecord> = parts
        .iter()
        .map(|(key, value, ts)| TopicRecord {
            key: Some(key),
            value: value.as_deref(),
            timestamp_ms: *ts,
        })
        .collect();
    let base = sample_context();
    let mut topic = ContextTopic::new(base, "fuzz topic");
    let accept = |_: &Context| Ok(());
    let half = records.len() / 2;
    for (i, refused) in topic.load(&records[..half], &accept) {
        assert!(i < half, "refused record {i} of {half}");
        assert!(!refused.message.is_empty());
    }
    let mut flow = StationFlow::new(topic.context().clone(), FlowConfig::default());
    for record in &records[half..] {
        if let Ok(Some(changed_from)) = topic.apply(record, &accept) {
            flow.update_context(topic.context().clone(), changed_from);
        }
    }
    topic
        .context()
        .validate()
        .expect("the topic's context stays valid");
    run_briefly(topic.context().clone());
}

/// Two hours of records on every station of `context` (up to 16), through to the end:
/// whatever the context says, the core neither panics nor emits a bad window.
fn run_briefly(context: Context) {
    let stations: Vec<String> = context
        .stations
        .iter()
        .take(16)
        .map(|s| s.code.clone())
        .collect();
    let mut flow = StationFlow::new(context, FlowConfig::default());
    let start = BASE - 2 * 3_600_000;
    flow.set_wall_clock(BASE + 3_600_000);
    let mut fed = 0;
    for minute in 0..120 {
        for (i, station) in stations.iter().enumerate() {
            let ts = start + minute * 60_000 + i as i64 * 1_000;
            let readings = match (minute + i as i64) % 7 {
                0 => vec![Reading::Productive(true), Reading::GoodDelta(2.0)],
                3 => vec![
                    Reading::Productive(false),
                    Reading::ErrorCode(Some("E1".into())),
                ],
                4 => vec![Reading::ErrorCode(None), Reading::BadDelta(1.0)],
                _ => vec![Reading::GoodDelta(1.0), Reading::KwhDelta(0.5)],
            };
            let record = SignalRecord {
                station: station.clone(),
                ts,
                seq: None,
                readings: readings.into(),
                unknown_keys: 0,
            };
            flow.apply(&record, Now(ts));
            fed += 1;
        }
        if minute % 30 == 29 {
            check_outputs(flow.advance(Now(start + minute * 60_000)));
        }
    }
    check_outputs(flow.finish(Now(BASE)));
    check_counters(&flow, fed);
}

// ---------------------------------------------------------------------------------------
// The core

/// The context the flow runs on: a discrete station with an ideal and unplanned causes, a
/// station that detects downtime by its production cycle with a schedule, and a
/// continuous line; a shift with a break, a planned stop.
fn flow_context(variant: usize) -> Context {
    static CONTEXTS: OnceLock<[Context; 2]> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let text = include_str!("flow_context.toml");
        let changed = text.replace("breaks = [\"08:20-08:23\"]", "breaks = [\"08:20-08:29\"]");
        [
            Context::from_toml_str(text, "fuzz flow").expect("valid"),
            Context::from_toml_str(&changed, "fuzz flow, changed").expect("valid"),
        ]
    })[variant % 2]
        .clone()
}

const STATIONS: [&str; 5] = ["U", "C", "O", "X", ""];
const VALUES: [f64; 12] = [
    0.0,
    1.0,
    2.0,
    3.0,
    5.0,
    0.5,
    -1.0,
    MAX_QUANTITY,
    -MAX_QUANTITY,
    1e14 + 0.5,
    1e-300,
    17.25,
];

pub fn station_flow(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let grouped = mode & 1 == 1;
    let config = FlowConfig {
        // Bounds the walk: a fuzzed history spans hours, not the years since 2010, so
        // that an input runs in milliseconds; short refresh steps stand in for long jumps.
        earliest_ts_ms: BASE - 2 * 3_600_000,
        max_refresh_ms: [24 * 3_600_000, 10 * 60_000][(mode >> 3) as usize & 1],
        allowed_lateness_ms: [3_600_000, 24 * 3_600_000][(mode >> 1) as usize & 1],
        // With no bound (a configuration the user may choose) one record dated 9999
        // walks every station there: a long run, not a bug.
        max_clock_skew_ms: Some([300_000, 3_600_000][(mode >> 2) as usize & 1]),
        ..FlowConfig::default()
    };
    let mut variant = 0;
    let mut flow = StationFlow::new(flow_context(variant), config);
    let mut wall = BASE + 3 * 3_600_000;
    flow.set_wall_clock(wall);
    let mut batch = Vec::new();
    let mut fed = 0u64;
    let mut ops = 0;
    // Two at most: a snapshot through JSON cost more than all the rest of an input.
    let mut snapshots = 0;
    while !input.is_empty() && ops < 400 {
        ops += 1;
        match input.byte() % 10 {
            0..=5 => {
                let Some(record) = fuzzed_record(&mut input) else {
                    continue;
                };
                fed += 1;
                let now = flow.max_ts().unwrap_or(BASE);
                if grouped {
                    // Admission errors are counted by the flow.
                    let _ = flow.admit(&record, Now(now), &mut batch);
                } else if let Outcome::Rejected(reason) = flow.apply(&record, Now(now)) {
                    assert!(!StationFlow::rejection_detail(reason).is_empty());
                }
            }
            6 => {
                flow.insert(&mut batch);
                let now = flow.max_ts().unwrap_or(BASE);
                let rows = 1 + input.u16() as usize;
                let Ok(()) = flow.advance_into(Now(now), rows, &mut [(), ()], drain_checked);
            }
            7 => {
                // Half a day of wall clock at most (see `earliest_ts_ms`).
                wall = (wall + input.byte() as i64 * 60_000).min(BASE + 12 * 3_600_000);
                flow.set_wall_clock(wall);
            }
            8 if snapshots < 2 => {
                snapshots += 1;
                flow.insert(&mut batch);
                let json = serde_json::to_vec(&flow.snapshot()).expect("a snapshot serialises");
                let snapshot: FlowSnapshot =
                    serde_json::from_slice(&json).expect("a snapshot restores");
                flow = StationFlow::restore(flow_context(variant), snapshot).expect("whole");
                flow.set_wall_clock(wall);
            }
            _ => {
                // (Also where an operation 8 past the snapshots lands.)
                flow.insert(&mut batch);
                variant += 1;
                let changed_from = BASE + input.u16() as i64 * 1_000;
                flow.update_context(flow_context(variant), changed_from);
            }
        }
    }
    flow.insert(&mut batch);
    let now = flow.max_ts().unwrap_or(BASE);
    let Ok(()) = flow.advance_into(Now(now), 4096, &mut [()], drain_checked);
    let Ok(()) = flow.finish_into(Now(now), 4096, &mut [()], drain_checked);
    check_counters(&flow, fed);
}

fn check_outputs(mut rows: Emitted) {
    let Ok(()) = drain_checked(&mut (), &mut rows);
}

fn drain_checked(_: &mut (), rows: &mut Emitted) -> Result<(), std::convert::Infallible> {
    rows.windows.iter().for_each(check_window);
    rows.events.iter().for_each(check_event);
    Ok(())
}

/// A record from the input, as a decoder could have made it (`None`: input ran out).
fn fuzzed_record(input: &mut Input) -> Option<SignalRecord> {
    let station = STATIONS[input.byte() as usize % STATIONS.len()].to_string();
    let ts = match input.byte() % 8 {
        0..=2 => BASE + input.u16() as i64 * 1_000,
        3 => BASE + input.u16() as i64 * 37,
        4 => BASE + (input.u16() as i16) as i64 * 60_000,
        5 => BASE + input.i32() as i64 * 1_000,
        6 => BASE + input.u16() as i64 * 60_000,
        _ => input.i64(),
    };
    let seq = match input.byte() % 4 {
        0 => Some(input.byte() as u64),
        1 => Some(u64::MAX - input.byte() as u64),
        _ => None,
    };
    let mut readings = Vec::new();
    for _ in 0..1 + input.byte() % 3 {
        let value = VALUES[input.byte() as usize % VALUES.len()];
        let code = ["E1", "E2", "FAULT #7"][input.byte() as usize % 3];
        readings.push(match input.byte() % 10 {
            0 => Reading::Productive(value > 0.0),
            1 => Reading::ErrorCode((value > 0.0).then(|| code.into())),
            2 => Reading::GoodDelta(value.abs()),
            3 => Reading::GoodTotal(value.abs()),
            4 => Reading::BadDelta(value.abs()),
            5 => Reading::BadTotal(value.abs()),
            6 => Reading::LineSpeed(value.abs()),
            7 => Reading::KwhTotal(value.abs()),
            8 => Reading::KwhDelta(value.abs()),
            _ => Reading::Rssi(value),
        });
    }
    if input.is_empty() {
        return None;
    }
    Some(SignalRecord {
        station,
        ts,
        seq,
        readings: readings.into(),
        unknown_keys: 0,
    })
}

/// Every record fed is applied, a duplicate or rejected, exactly once.
fn check_counters(flow: &StationFlow, fed: u64) {
    let c = flow.counters();
    assert_eq!(c.records_in, fed, "{c:?}");
    assert_eq!(
        c.records_in,
        c.applied + c.duplicates + c.rejected_total(),
        "{c:?}"
    );
}
