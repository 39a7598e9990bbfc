//! The operators alone, decoding excluded: generated records for 1,000 stations through
//! `StationFlow` (apply, advance every 10,000 records, finish), windows drained.
//! Run: `cargo bench -p stationflow-benches --bench operators`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stationflow_benches::replay_synthetic;
use stationflow_operators::synthetic;
use stationflow_schemas::signal::SignalRecord;

const STATIONS: usize = 1_000;
const RECORDS: usize = 1_000_000;

fn operators(c: &mut Criterion) {
    // One record per station every 3 s: 50 minutes of a 1,000-station plant.
    let records: Vec<SignalRecord> = synthetic::signals(STATIONS, RECORDS, 3_000, 42).collect();
    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    group.bench_function("replay_1000_stations_1M_records", |b| {
        b.iter(|| replay_synthetic(STATIONS, &records))
    });
    group.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);
