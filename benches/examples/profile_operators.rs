//! The operators bench's workload as a plain binary, for `perf record`.
use stationflow_operators::{synthetic, FlowConfig, StationFlow};

fn main() {
    let records: Vec<_> = synthetic::signals(1000, 1_000_000, 3_000, 42).collect();
    let start = std::time::Instant::now();
    let mut flow = StationFlow::new(synthetic::plant(1000), FlowConfig::default());
    let mut now = i64::MIN;
    let mut windows = 0;
    for (i, r) in records.iter().enumerate() {
        now = now.max(r.ts);
        flow.apply(r, now);
        if i % 10_000 == 9_999 {
            flow.advance(now);
            windows += flow.drain_windows().len();
            flow.drain_events();
        }
    }
    flow.advance(now);
    flow.finish(now);
    windows += flow.drain_windows().len();
    let s = start.elapsed().as_secs_f64();
    println!(
        "{windows} windows, {:.2} M records/s",
        records.len() as f64 / s / 1e6
    );
}
