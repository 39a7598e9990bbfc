//! The operators bench's workload as a plain binary, for `perf record`:
//! `cargo build --release -p stationflow-benches --example profile_operators`.

use stationflow_benches::replay_synthetic;
use stationflow_operators::synthetic;

fn main() {
    let records: Vec<_> = synthetic::signals(1000, 1_000_000, 3_000, 42).collect();
    let start = std::time::Instant::now();
    let windows = replay_synthetic(1000, &records);
    let s = start.elapsed().as_secs_f64();
    println!(
        "{windows} windows, {:.2} M records/s",
        records.len() as f64 / s / 1e6
    );
}
