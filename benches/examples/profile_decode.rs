//! The JSON decoder alone over a JSON Lines file, for cachegrind and `perf record`:
//! `cargo run --release -p stationflow-benches --example profile_decode -- <file.jsonl>`.

use stationflow_schemas::signal::{decode_json_into, SignalRecord};

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: profile_decode <file.jsonl>");
    let text = std::fs::read(&path).expect("readable file");
    let mut record = SignalRecord::default();
    let (mut decoded, mut rejected, mut readings) = (0u64, 0u64, 0usize);
    let start = std::time::Instant::now();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match decode_json_into(line, None, None, &mut record) {
            Ok(()) => {
                decoded += 1;
                readings += record.readings.len();
            }
            Err(_) => rejected += 1,
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{decoded} decoded ({readings} readings), {rejected} rejected, {:.2} M records/s",
        (decoded + rejected) as f64 / s / 1e6
    );
}
