//! The live engine's Prometheus metrics and the endpoint that serves them
//! (`GET /metrics`, text format 0.0.4). Counters are this process's since it started;
//! latencies are kept in HDR histograms and exposed as Prometheus histograms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use stationflow_schemas::RejectReason;

use crate::error::{format_err, Context as _, Result};
use crate::sinks::kafka::publisher::Delivery;

/// Bucket bounds of the latency histograms, milliseconds.
const BUCKETS_MS: [u64; 13] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000,
];

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency distribution in milliseconds (1 ms to 1 h, 3 significant digits).
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000, 3).expect("static bounds are valid"),
        ))
    }
}

impl Latency {
    pub fn record_ms(&self, ms: u64) {
        self.lock().saturating_record(ms.max(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn quantile_ms(&self, q: f64) -> u64 {
        self.lock().value_at_quantile(q)
    }

    pub fn count(&self) -> u64 {
        self.lock().len()
    }
}

#[derive(Default)]
pub struct LiveMetrics {
    pub records_in: Counter,
    pub applied: Counter,
    pub duplicates: Counter,
    pub late_records: Counter,
    pub windows_emitted: Counter,
    pub revisions_emitted: Counter,
    pub alerts_emitted: Counter,
    pub checkpoints: Counter,
    /// Checkpoint intervals of a partition in which nothing changed: none written.
    pub checkpoints_unchanged: Counter,
    pub context_changes: Counter,
    /// Microseconds the main loop waited on the consumer for a record.
    pub poll_wait_us: Counter,
    pub context_refused: Counter,
    /// Output records and dead letters the producer refused whole (too large): their
    /// start went to the dead-letter topic.
    pub outputs_truncated: Counter,
    /// Refused even cut short: logged and skipped.
    pub outputs_skipped: Counter,
    dead_letters: Mutex<BTreeMap<RejectReason, u64>>,
    /// Per partition: wall clock minus the partition's largest event time, ms.
    watermark_lag_ms: Mutex<BTreeMap<i32, i64>>,
    /// Per partition: records on the broker not yet read.
    consumer_lag: Mutex<BTreeMap<i32, i64>>,
    pub checkpoint_duration: Latency,
    /// From the arrival of the record that moved a window's watermark past its end to the
    /// window's first emission.
    pub emit_latency: Latency,
    /// The output queue, once the engine has one.
    pub uploads: std::sync::OnceLock<Arc<crate::sinks::upload_queue::UploadQueue>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveMetrics {
    pub fn new() -> Arc<Self> {
        Arc::new(LiveMetrics::default())
    }

    pub fn dead_letter(&self, reason: RejectReason) {
        *locked(&self.dead_letters).entry(reason).or_default() += 1;
    }

    /// Counts what became of an output record or dead letter.
    pub fn delivered(&self, delivery: Delivery) {
        match delivery {
            Delivery::Sent => {}
            Delivery::Truncated => self.outputs_truncated.add(1),
            Delivery::Skipped => self.outputs_skipped.add(1),
        }
    }

    pub fn dead_letters(&self) -> BTreeMap<RejectReason, u64> {
        locked(&self.dead_letters).clone()
    }

    pub fn set_watermark_lag(&self, partition: i32, ms: i64) {
        locked(&self.watermark_lag_ms).insert(partition, ms);
    }

    pub fn set_consumer_lag(&self, partition: i32, records: i64) {
        locked(&self.consumer_lag).insert(partition, records);
    }

    /// A partition left this process: its gauges go with it.
    pub fn forget_partition(&self, partition: i32) {
        locked(&self.watermark_lag_ms).remove(&partition);
        locked(&self.consumer_lag).remove(&partition);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "records_in",
                "Records read from the signals topic",
                &self.records_in,
            ),
            (
                "records_applied",
                "Records applied to windows",
                &self.applied,
            ),
            (
                "records_duplicate",
                "Records dropped as duplicates",
                &self.duplicates,
            ),
            (
                "late_records",
                "Records older than their station's watermark, applied",
                &self.late_records,
            ),
            (
                "windows_emitted",
                "Window rows emitted, revisions included",
                &self.windows_emitted,
            ),
            (
                "revisions_emitted",
                "Window rows emitted with revision > 0",
                &self.revisions_emitted,
            ),
            (
                "alerts_emitted",
                "Records sent to the alerts topic",
                &self.alerts_emitted,
            ),
            (
                "checkpoints",
                "Partition checkpoints written",
                &self.checkpoints,
            ),
            (
                "checkpoints_unchanged",
                "Partition checkpoints not written: nothing changed since the last",
                &self.checkpoints_unchanged,
            ),
            (
                "poll_wait_microseconds",
                "Time the main loop waited for the broker's records",
                &self.poll_wait_us,
            ),
            (
                "context_changes",
                "Context topic records that changed the context",
                &self.context_changes,
            ),
            (
                "context_refused",
                "Context topic records refused (sent to the dead-letter topic)",
                &self.context_refused,
            ),
            (
                "outputs_truncated",
                "Records the producer refused whole (too large): their start went to the dead-letter topic",
                &self.outputs_truncated,
            ),
            (
                "outputs_skipped",
                "Records the producer refused even cut short: logged and skipped",
                &self.outputs_skipped,
            ),
        ];
        for (name, help, counter) in counters {
            counter_family(&mut out, name, help);
            let _ = writeln!(out, "stationflow_{name}_total {}", counter.get());
        }
        counter_family(&mut out, "dead_letters", "Records dead-lettered, by reason");
        let dead = self.dead_letters();
        for reason in RejectReason::ALL {
            let n = dead.get(&reason).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "stationflow_dead_letters_total{{reason=\"{reason}\"}} {n}"
            );
        }
        gauge_family(
            &mut out,
            "watermark_lag_seconds",
            "Wall clock minus the partition's largest event time",
            &locked(&self.watermark_lag_ms),
            |ms| ms as f64 / 1000.0,
        );
        gauge_family(
            &mut out,
            "consumer_lag_records",
            "Records on the broker not yet read, per partition",
            &locked(&self.consumer_lag),
            |n| n as f64,
        );
        if let Some(queue) = self.uploads.get() {
            let s = queue.status();
            counter_family(
                &mut out,
                "store_retries",
                "Failed puts to the object store, retried",
            );
            let _ = writeln!(out, "stationflow_store_retries_total {}", queue.retries());
            for (name, help, value) in [
                (
                    "output_queue_uploads",
                    "Files and checkpoints waiting for the object store",
                    s.uploads as u64,
                ),
                (
                    "output_queue_memory_bytes",
                    "Bytes of queued output held in memory",
                    s.memory_bytes,
                ),
                (
                    "output_queue_spool_bytes",
                    "Bytes of queued output spooled to local disk",
                    s.spool_bytes,
                ),
                (
                    "store_failing",
                    "1 while the object store refuses output",
                    u64::from(s.store_failing),
                ),
            ] {
                let _ = writeln!(out, "# HELP stationflow_{name} {help}.");
                let _ = writeln!(out, "# TYPE stationflow_{name} gauge");
                let _ = writeln!(out, "stationflow_{name} {value}");
            }
        }
        histogram(
            &mut out,
            "checkpoint_duration_seconds",
            "Time to close one partition's epoch and queue its output and checkpoint",
            &self.checkpoint_duration,
        );
        histogram(
            &mut out,
            "window_emit_latency_seconds",
            "From the record that let a window close to the window's first emission",
            &self.emit_latency,
        );
        out
    }
}

fn counter_family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP stationflow_{name}_total {help}.");
    let _ = writeln!(out, "# TYPE stationflow_{name}_total counter");
}

fn gauge_family(
    out: &mut String,
    name: &str,
    help: &str,
    values: &BTreeMap<i32, i64>,
    scale: impl Fn(i64) -> f64,
) {
    let _ = writeln!(out, "# HELP stationflow_{name} {help}.");
    let _ = writeln!(out, "# TYPE stationflow_{name} gauge");
    for (partition, v) in values {
        let _ = writeln!(
            out,
            "stationflow_{name}{{partition=\"{partition}\"}} {}",
            scale(*v)
        );
    }
}

pub(crate) fn histogram(out: &mut String, name: &str, help: &str, latency: &Latency) {
    let h = latency.lock();
    let _ = writeln!(out, "# HELP stationflow_{name} {help}.");
    let _ = writeln!(out, "# TYPE stationflow_{name} histogram");
    for le in BUCKETS_MS {
        let n = h.count_between(0, le);
        let _ = writeln!(
            out,
            "stationflow_{name}_bucket{{le=\"{}\"}} {n}",
            le as f64 / 1000.0
        );
    }
    let _ = writeln!(out, "stationflow_{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let sum_s = h.mean() * h.len() as f64 / 1000.0;
    let _ = writeln!(out, "stationflow_{name}_sum {sum_s}");
    let _ = writeln!(out, "stationflow_{name}_count {}", h.len());
}

/// Serves `GET /metrics` on `listen` from a thread of its own; returns the bound address
/// (`listen` may ask for port 0).
pub fn serve(listen: &str, metrics: Arc<LiveMetrics>) -> Result<std::net::SocketAddr> {
    let server =
        tiny_http::Server::http(listen).with_context(|| format!("metrics endpoint on {listen}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format_err!("metrics endpoint on {listen} is not a TCP address"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header = "Content-Type: text/plain; version=0.0.4"
                        .parse::<tiny_http::Header>()
                        .expect("static header");
                    tiny_http::Response::from_string(metrics.render()).with_header(header)
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_buckets() {
        let m = LiveMetrics::new();
        m.records_in.add(3);
        m.dead_letter(RejectReason::TooLate);
        m.set_consumer_lag(2, 40);
        for ms in [3, 30, 300, 3_000] {
            m.emit_latency.record_ms(ms);
        }
        let text = m.render();
        for line in [
            "stationflow_records_in_total 3",
            "stationflow_dead_letters_total{reason=\"too_late\"} 1",
            "stationflow_dead_letters_total{reason=\"malformed_json\"} 0",
            "stationflow_consumer_lag_records{partition=\"2\"} 40",
            "stationflow_window_emit_latency_seconds_bucket{le=\"0.005\"} 1",
            "stationflow_window_emit_latency_seconds_bucket{le=\"0.5\"} 3",
            "stationflow_window_emit_latency_seconds_bucket{le=\"+Inf\"} 4",
            "stationflow_window_emit_latency_seconds_count 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        m.forget_partition(2);
        assert!(!m.render().contains("partition=\"2\""));
    }
}
