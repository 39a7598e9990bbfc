//! What a checkpoint of many stations costs: a flow of STATIONS synthetic stations fed
//! HOURS of records at realistic density (a unit every 20–60 s), the batch path replay
//! and the live engine take, advanced every 8,192 records; then its snapshot is
//! serialised and gzipped as the live engine writes a checkpoint, and read back into a
//! flow. Prints the bytes and the times, per station too.
//!
//!   cargo run --release -p stationflow-benches --example checkpoint_size -- STATIONS HOURS
//!
//! With `CHECKPOINT_JSON=<path>` the snapshot's JSON is written there too.

use std::io::Write;
use std::time::Instant;

use flate2::write::GzEncoder;
use stationflow_benches::feed;
use stationflow_operators::synthetic::{self, Pace};
use stationflow_operators::{FlowConfig, FlowSnapshot, StationFlow};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: usize| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let (stations, hours) = (arg(1_000), arg(2));
    // One record every 40 s on average.
    let records = stations * hours * 90;
    let started = Instant::now();
    let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
    let signals = synthetic::paced(stations, records, Pace::Between(20_000, 60_000), 7);
    feed(&mut flow, signals);
    let fed = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let snapshot = flow.snapshot();
    let json = serde_json::to_vec(&snapshot).expect("a snapshot serialises");
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).expect("in memory");
    let gzipped = gz.finish().expect("in memory");
    let took = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let read: FlowSnapshot = serde_json::from_slice(&json).expect("a snapshot restores");
    let restored = StationFlow::restore(synthetic::plant(stations), read).expect("whole");
    let restore = started.elapsed().as_secs_f64();
    assert_eq!(restored.counters(), flow.counters());
    if let Ok(path) = std::env::var("CHECKPOINT_JSON") {
        std::fs::write(path, &json).expect("CHECKPOINT_JSON is a writable path");
    }
    println!(
        "{stations} stations, {hours} h, {records} records (fed in {fed:.1} s): checkpoint \
         {:.1} MB JSON, {:.1} MB gzipped, {:.2} s, restored in {restore:.2} s; per station \
         {:.0} B gzipped, {:.1} µs",
        json.len() as f64 / 1e6,
        gzipped.len() as f64 / 1e6,
        took,
        gzipped.len() as f64 / stations as f64,
        took * 1e6 / stations as f64,
    );
}
