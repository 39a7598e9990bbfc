//! The live driver: the signals topic in (`sources::kafka::signals`, a consumer group),
//! a `StationFlow` per assigned partition fed a clock that follows the wall clock
//! (`clock`), windows out to Parquet and `station.windows`, rejections to `signals.dlq`,
//! checkpoints per partition on the object store (`partition`). As the partitions' owner
//! it takes each over at its checkpointed offset when the group assigns it, and
//! checkpoints it before it is released.

pub mod clock;
pub mod partition;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use serde_json::json;
use stationflow_operators::alerts::AlertRules;
use stationflow_operators::FlowConfig;
use stationflow_schemas::context_topic::RefusedRecord;
use stationflow_schemas::Context;

use crate::access::audit::AuditLog;
use crate::checkpoint::CheckpointStore;
use crate::config::LiveConfig;
use crate::error::{Context as _, Error, Result};
use crate::metrics::LiveMetrics;
use crate::sinks::kafka::publisher::Publisher;
use crate::sinks::parquet::ParquetSinkConfig;
use crate::sinks::upload_queue::UploadQueue;
use crate::sources::kafka::context_topic::{ContextEvent, ContextFeed};
use crate::sources::kafka::signals::{lock, PartitionOwner, SignalsConfig, SignalsSource};
use crate::store::Root;
use partition::{PartitionTask, FROM_BEGINNING};

/// What every partition of this process shares: settings, context, stores, producer.
pub struct LiveEnv {
    pub settings: LiveConfig,
    pub context: Context,
    /// `context.fingerprint()`, kept in checkpoints.
    pub context_fingerprint: u64,
    pub alert_rules: AlertRules,
    /// Event-time settings.
    pub flow: FlowConfig,
    pub checkpoint_interval_ms: i64,
    pub flush_timeout: Duration,
    /// Partitions of the signals topic (which stations a partition answers for).
    pub partitions: i32,
    pub output: Root,
    pub checkpoints: CheckpointStore,
    /// Parquet files and checkpoints on their way to the store, in order.
    pub uploads: Arc<UploadQueue>,
    /// Told when an epoch's commit is in the store: the cue to compute sums again.
    pub commits_landed: Arc<tokio::sync::Notify>,
    pub sink: ParquetSinkConfig,
    pub runtime: tokio::runtime::Handle,
    pub producer: Publisher,
    pub metrics: Arc<LiveMetrics>,
    /// Where context changes are recorded (SPEC §7), each anchored under `output`.
    pub audit: AuditLog,
}

impl LiveEnv {
    /// A context record that cannot be applied: to the dead-letter topic, with why.
    pub fn refuse_context(
        &mut self,
        refused: &RefusedRecord,
        message: &OwnedMessage,
    ) -> Result<()> {
        tracing::warn!(%refused, "context record refused");
        self.metrics.context_refused.add(1);
        self.record_context(json!({
            "source": "topic",
            "topic": message.topic(),
            "key": refused.key,
            "partition": message.partition(),
            "offset": message.offset(),
            "status": format!("refused: {}", refused.message),
        }))?;
        self.dead_letter(message, BAD_CONTEXT, &refused.to_string())
    }

    /// One context change (or refusal) in the audit log, before it takes effect: no
    /// line, no change. The head is anchored under the output root.
    pub fn record_context(&self, fields: serde_json::Value) -> Result<()> {
        let head = self
            .audit
            .append("context", fields)
            .context("recording a context change in the audit log")?;
        if let Err(e) = self.runtime.block_on(AuditLog::anchor(&self.output, &head)) {
            // The line is what must exist; an anchor missed now is made by a later one.
            tracing::warn!(error = %format!("{e:#}"), "the audit log's head was not anchored");
        }
        Ok(())
    }

    /// `message` to the dead-letter topic with why, counting what became of it.
    pub fn dead_letter<M: rdkafka::Message>(
        &mut self,
        message: &M,
        reason: &str,
        detail: &str,
    ) -> Result<()> {
        let dlq = &self.settings.kafka.dlq_topic;
        let delivery = self.producer.dead_letter(dlq, message, reason, detail)?;
        self.metrics.delivered(delivery);
        Ok(())
    }

    /// A window or alert (JSON, keyed by station) to its topic, counting what became of
    /// it (a record the producer refuses goes to the dead-letter topic cut short).
    pub fn send_output(&mut self, topic: OutputTopic, key: &str, json: &[u8]) -> Result<()> {
        let kafka = &self.settings.kafka;
        let topic = match topic {
            OutputTopic::Windows => &kafka.windows_topic,
            OutputTopic::Alerts => &kafka.alerts_topic,
        };
        let delivery = (self.producer).send_output(topic, key, json, &kafka.dlq_topic)?;
        self.metrics.delivered(delivery);
        Ok(())
    }
}

/// The output topics windows and alerts go to.
#[derive(Debug, Clone, Copy)]
pub enum OutputTopic {
    Windows,
    Alerts,
}

/// The partitions this process owns, behind the lock the rebalance callback shares.
pub struct Assigned {
    env: LiveEnv,
    tasks: BTreeMap<i32, PartitionTask>,
    /// A failure inside a callback, reported by the main loop.
    failure: Option<Error>,
}

impl PartitionOwner for Assigned {
    /// Opens each partition from its checkpoint, if it has one.
    fn take_over(&mut self, partitions: &[i32]) -> Result<Vec<(i32, Option<i64>)>> {
        let wall = wall_ms();
        let mut offsets = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let task = PartitionTask::open(&self.env, p, wall)?;
            let next = Some(task.next_offset()).filter(|&n| n != FROM_BEGINNING);
            offsets.push((p, next));
            self.tasks.insert(p, task);
        }
        Ok(offsets)
    }

    fn release_all(&mut self) -> Result<()> {
        self.release_all_at(wall_ms())
    }

    fn fail(&mut self, error: Error) {
        self.failure.get_or_insert(error);
    }
}

impl Assigned {
    /// Checkpoints every partition (clean) and lets them go.
    fn release_all_at(&mut self, wall: i64) -> Result<()> {
        let tasks = std::mem::take(&mut self.tasks);
        for (p, mut task) in tasks {
            task.close_epoch(&mut self.env, wall, true)?;
            self.env.metrics.forget_partition(p);
            tracing::info!(partition = p, "partition released");
        }
        // The next owner reads the checkpoints: they must be in the store first.
        self.env.uploads.drain()?;
        Ok(())
    }

    /// A new context for every partition (and the alert rules in it).
    fn change_context(&mut self, context: Context, changed_from: i64) -> Result<()> {
        self.env.alert_rules = AlertRules::new(&context).map_err(Error::user)?;
        self.env.context_fingerprint = context.fingerprint();
        for task in self.tasks.values_mut() {
            task.change_context(&self.env, context.clone(), changed_from);
        }
        self.env.context = context;
        self.env.metrics.context_changes.add(1);
        tracing::info!(
            from = %stationflow_schemas::time::format_ms(changed_from.max(0)),
            "context changed"
        );
        Ok(())
    }

    fn tick(&mut self, wall: i64) -> Result<Vec<(i32, i64)>> {
        let mut checkpointed = Vec::new();
        for (p, task) in &mut self.tasks {
            if task.tick(&mut self.env, wall)? {
                checkpointed.push((*p, task.next_offset()));
            }
        }
        Ok(checkpointed)
    }
}

pub use super::wall_ms;

/// Wall-clock milliseconds between two looks at the context topic.
const CONTEXT_POLL_MS: i64 = 100;

/// The dead-letter reason of a refused context record.
pub const BAD_CONTEXT: &str = "bad_context";

/// What a context must pass besides validation to be used live: its alert rules' metrics
/// exist.
pub fn check_alert_rules(context: &Context) -> Result<(), String> {
    AlertRules::new(context).map(|_| ())
}

/// Runs until `stop` is set (SIGTERM, SIGINT) or something fails; on a stop, every
/// partition is checkpointed before the process leaves the group. With a context feed,
/// its changes reach every partition between two signal records.
pub fn run(
    env: LiveEnv,
    signals: SignalsConfig,
    mut context_feed: Option<ContextFeed>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let assigned = Arc::new(Mutex::new(Assigned {
        env,
        tasks: BTreeMap::new(),
        failure: None,
    }));
    let consumer = signals.build(assigned.clone())?;
    let sums = {
        let env = &lock(&assigned).env;
        keep_sums_fresh(
            &env.output,
            &env.runtime,
            env.settings.output.sums_interval_s,
            env.commits_landed.clone(),
        )
    };
    let mut last_lag_check = 0;
    let mut last_context_poll = 0;
    while !stop.load(Ordering::Relaxed) {
        let waiting = std::time::Instant::now();
        let polled = consumer.poll(Duration::from_millis(50));
        let waited = waiting.elapsed().as_micros() as u64;
        let wall = wall_ms();
        let mut state = lock(&assigned);
        if let Some(e) = state.failure.take() {
            return Err(e);
        }
        state.env.metrics.poll_wait_us.add(waited);
        match polled {
            Some(Ok(message)) => {
                let Assigned { env, tasks, .. } = &mut *state;
                if let Some(task) = tasks.get_mut(&message.partition()) {
                    task.apply(env, &message, wall)?;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer"),
            None => {}
        }
        if let Some(feed) = context_feed
            .as_mut()
            .filter(|_| wall - last_context_poll >= CONTEXT_POLL_MS)
        {
            last_context_poll = wall;
            for event in feed.poll(&check_alert_rules) {
                match event {
                    ContextEvent::Changed {
                        from,
                        key,
                        partition,
                        offset,
                    } => {
                        state.env.record_context(json!({
                            "source": "topic",
                            "topic": state.env.settings.kafka.context_topic,
                            "key": key,
                            "partition": partition,
                            "offset": offset,
                            "status": "applied",
                            "changed_from": stationflow_schemas::time::format_ms(from),
                            "fingerprint": format!("{:016x}", feed.context().fingerprint()),
                        }))?;
                        state.change_context(feed.context().clone(), from)?
                    }
                    ContextEvent::Refused(refused, message) => {
                        state.env.refuse_context(&refused, &message)?
                    }
                }
            }
        }
        let checkpointed = state.tick(wall)?;
        if wall - last_lag_check >= 5_000 {
            last_lag_check = wall;
            update_consumer_lag(&consumer, &state);
        }
        drop(state);
        consumer.commit_hint(&checkpointed);
    }
    let metrics = lock(&assigned).env.metrics.clone();
    let latency = &metrics.emit_latency;
    tracing::info!(
        windows = latency.count(),
        p50_ms = latency.quantile_ms(0.5),
        p99_ms = latency.quantile_ms(0.99),
        max_ms = latency.quantile_ms(1.0),
        "window emit latency since start"
    );
    tracing::info!("stopping: checkpointing every partition");
    let mut state = lock(&assigned);
    state.release_all_at(wall_ms())?;
    drop(state);
    consumer.leave();
    if let Some(sums) = sums {
        // The last epochs are committed: their days get sums before the engine goes,
        // once the turn under way (if any) is over.
        let state = lock(&assigned);
        let (output, runtime) = (&state.env.output, &state.env.runtime);
        let _ = sums.stop.send(());
        let _ = runtime.block_on(sums.task);
        if let Err(e) = runtime.block_on(crate::datasets::sums::refresh(output)) {
            tracing::warn!(error = %format!("{e:#}"), "window sums");
        }
    }
    Ok(())
}

/// The task that keeps `window_sums` fresh, and how to stop it between two turns.
struct SumsTask {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Computes `window_sums` again for the days whose committed windows changed
/// (`datasets::sums`) once an epoch's commit has landed, and at most once every
/// `every_s` seconds: the commits landing meanwhile are one cue. A failure is logged and
/// tried again at the next cue.
fn keep_sums_fresh(
    output: &Root,
    runtime: &tokio::runtime::Handle,
    every_s: u32,
    commits_landed: Arc<tokio::sync::Notify>,
) -> Option<SumsTask> {
    if every_s == 0 {
        return None;
    }
    let output = output.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        let spacing = Duration::from_secs(every_s.into());
        loop {
            tokio::select! {
                _ = commits_landed.notified() => {}
                _ = &mut stopped => return,
            }
            // Decoding a day of windows is seconds of CPU: off the runtime's worker,
            // which the upload queue needs.
            let (output, runtime) = (output.clone(), tokio::runtime::Handle::current());
            let refreshed = tokio::task::spawn_blocking(move || {
                runtime.block_on(crate::datasets::sums::refresh(&output))
            })
            .await;
            match refreshed.unwrap_or_else(|e| Err(Error::from(e))) {
                Ok(done) if !done.is_empty() => {
                    tracing::debug!(days = done.len(), "window sums computed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "window sums"),
            }
            tokio::select! {
                _ = tokio::time::sleep(spacing) => {}
                _ = &mut stopped => return,
            }
        }
    });
    Some(SumsTask { task, stop })
}

fn update_consumer_lag(consumer: &SignalsSource<Assigned>, state: &Assigned) {
    for (p, task) in &state.tasks {
        if let Some(end) = consumer.end_offset(*p) {
            let next = task.next_offset().max(0);
            state.env.metrics.set_consumer_lag(*p, (end - next).max(0));
        }
    }
}
