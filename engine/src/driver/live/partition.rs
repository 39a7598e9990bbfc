//! One partition of the signals topic in this process: its flow, clock, open dataset
//! files and epoch. Output is tied to checkpoints by epochs: a partition writes epoch
//! *e*'s Parquet files and Kafka records, flushes both, then checkpoints (state, next
//! offset, epoch *e*+1) in one put. A restore from epoch *e* first deletes the
//! partition's files of epochs ≥ *e*, so rows written after the last checkpoint are
//! written again, never twice.

use std::collections::BTreeMap;

use rdkafka::message::BorrowedMessage;
use rdkafka::message::Headers;
use rdkafka::Message;
use stationflow_operators::alerts::AlertState;
use stationflow_operators::{Admitted, Emitted, Now, StationFlow};
use stationflow_schemas::signal::{decode_json_into, Rejection, SignalRecord, MAX_RECORD_BYTES};
use stationflow_schemas::time::minute_floor;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};
use stationflow_schemas::{Context, RejectReason};

use super::clock::PartitionClock;
use super::{LiveEnv, OutputTopic};
use crate::checkpoint::{PartitionCheckpoint, FORMAT};
use crate::error::{ensure, Context as _, Result};
use crate::failpoint;
use crate::kafka::partitioner::stations_of;
use crate::kafka::REJECTED_HEADER;
use crate::sinks::parquet::{remove_epochs_after, DatasetRow, DatasetWriter};
use crate::store::commits::Commit;

/// Revisions emitted after an unclean restore are numbered from `generation << 16` up.
const GENERATION_SHIFT: u32 = 16;

/// `next_offset` of a partition never read: start at the beginning of the topic.
pub const FROM_BEGINNING: i64 = -2;

/// Records between watermark advances of one partition.
const ADVANCE_EVERY_RECORDS: usize = 4096;
/// Wall-clock milliseconds between watermark advances of a partition.
const ADVANCE_EVERY_MS: i64 = 200;

pub struct PartitionTask {
    pub partition: i32,
    flow: StationFlow,
    alerts: AlertState,
    clock: PartitionClock,
    epoch: u64,
    generation: u32,
    next_offset: i64,
    windows: DatasetWriter<StationWindow>,
    events: DatasetWriter<DowntimeEvent>,
    since_advance: usize,
    last_advance_ms: i64,
    last_checkpoint_ms: i64,
    /// Whether anything a checkpoint holds changed since the last one: a record read, a
    /// station refreshed, the context. An idle partition is not checkpointed again (a
    /// snapshot of a day's records, serialised and put every interval for nothing).
    changed: bool,
    /// Wall time at which this partition's data first reached each minute (less the
    /// out-of-orderness): when windows ending there could first close.
    closable_since: BTreeMap<i64, i64>,
    record: SignalRecord,
    /// Records admitted since the last advance, inserted just before the next one (or
    /// before a context change).
    admitted: Vec<Admitted>,
}

impl PartitionTask {
    /// Takes over `partition`: restores its checkpoint (or starts fresh), removes output
    /// written after that checkpoint, and records the takeover before anything is emitted.
    pub fn open(env: &LiveEnv, partition: i32, wall: i64) -> Result<Self> {
        let topic = &env.settings.kafka.signals_topic;
        // Our own queued output for it (taken back soon after release) lands first.
        env.uploads.drain()?;
        let saved = env
            .runtime
            .block_on(env.checkpoints.load(topic, partition))?;
        let filter = stations_of(partition as u32, env.partitions as u32);
        let (flow, alerts, epoch, generation, next_offset) = match saved {
            Some(cp) => {
                ensure!(
                    cp.partitions == env.partitions,
                    "checkpoint of {topic}/{partition} was written when the topic had {} partitions; it \
                     has {} now, so stations moved between partitions. Start a new consumer group \
                     (kafka.group_id) or restore the partition count",
                    cp.partitions,
                    env.partitions
                );
                let generation = cp.generation + u32::from(!cp.clean);
                let restored = StationFlow::restore(env.context.clone(), cp.flow)
                    .with_context(|| format!("restoring the checkpoint of {topic}/{partition}"))?;
                let mut flow = restored.with_stations(filter);
                if cp.context_fingerprint != env.context_fingerprint {
                    // The context changed while nobody owned the partition.
                    tracing::info!(partition, "context differs from the checkpoint's");
                    flow.update_context(env.context.clone(), i64::MIN);
                }
                let alerts = AlertState::restore(cp.alerts);
                (flow, alerts, cp.epoch, generation, cp.next_offset)
            }
            None => (
                StationFlow::new(env.context.clone(), env.flow.clone()).with_stations(filter),
                AlertState::default(),
                1,
                0,
                FROM_BEGINNING,
            ),
        };
        for dataset in ["station_windows", "downtime_events"] {
            let store = &*env.output.store;
            env.runtime
                .block_on(remove_epochs_after(
                    store,
                    &env.output.prefix,
                    dataset,
                    partition,
                    epoch - 1,
                ))
                .with_context(|| format!("removing {dataset} files of {topic}/{partition} written after its checkpoint"))?;
        }
        let task = PartitionTask {
            partition,
            clock: PartitionClock::starting_at(flow.max_ts(), wall),
            flow,
            alerts,
            epoch,
            generation,
            next_offset,
            windows: epoch_writer(env, partition, epoch),
            events: epoch_writer(env, partition, epoch),
            since_advance: 0,
            last_advance_ms: wall,
            last_checkpoint_ms: wall,
            changed: false,
            closable_since: BTreeMap::new(),
            record: SignalRecord::default(),
            admitted: Vec::with_capacity(ADVANCE_EVERY_RECORDS),
        };
        // Until the next checkpoint this process may emit; a crash before it must make
        // the next owner number its revisions higher.
        env.runtime
            .block_on(env.checkpoints.save(&task.checkpoint(env, wall, false)))?;
        tracing::info!(
            partition,
            epoch,
            generation,
            next_offset,
            "partition assigned"
        );
        Ok(task)
    }

    /// The offset to resume reading at (`FROM_BEGINNING` for a partition never read).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    fn checkpoint(&self, env: &LiveEnv, wall: i64, clean: bool) -> PartitionCheckpoint {
        PartitionCheckpoint {
            format: FORMAT,
            topic: env.settings.kafka.signals_topic.clone(),
            partition: self.partition,
            partitions: env.partitions,
            epoch: self.epoch,
            next_offset: self.next_offset,
            written_at_ms: wall,
            generation: self.generation,
            clean,
            flow: self.flow.snapshot(),
            alerts: self.alerts.snapshot(),
            context_fingerprint: env.context_fingerprint,
        }
    }

    /// The context changed: windows from `changed_from` on are recomputed at the next
    /// advance and emitted again where they differ.
    pub fn change_context(&mut self, env: &LiveEnv, context: Context, changed_from: i64) {
        // Admitted under the old context, which numbered the stations.
        self.insert_admitted(env);
        self.flow.update_context(context, changed_from);
        self.changed = true;
    }

    /// Decodes and admits one record, to go into its station at the next advance;
    /// anything not admitted goes to the dead-letter topic with the original bytes.
    pub fn apply(
        &mut self,
        env: &mut LiveEnv,
        message: &BorrowedMessage<'_>,
        wall: i64,
    ) -> Result<()> {
        if message.offset() < self.next_offset {
            return Ok(()); // already reflected in the state (a fetch from before a seek)
        }
        let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
        let payload = message.payload().unwrap_or_default();
        let fallback_ts = message.timestamp().to_millis();
        let metrics = &env.metrics;
        metrics.records_in.add(1);
        let late_before = self.flow.counters().late_records;
        let decoded = match rejected_at_source(message) {
            Some(reason) => Err(Rejection::new(reason, "rejected when read from its file")),
            None if payload.len() > MAX_RECORD_BYTES => Err(Rejection::new(
                RejectReason::TooLarge,
                format!(
                    "the record is {} bytes, more than {MAX_RECORD_BYTES}",
                    payload.len()
                ),
            )),
            None => decode_json_into(payload, key, fallback_ts, &mut self.record),
        };
        let rejection = match decoded {
            Err(rejection) => {
                self.flow.count_undecodable(rejection.reason);
                Some((rejection.reason, rejection.detail))
            }
            Ok(()) => {
                // A rejected record (from the future, implausibly old) must not move the
                // partition's clock either.
                let clock_before = self.clock;
                self.clock.saw(self.record.ts, wall);
                let now = self.clock.now(wall).unwrap_or(self.record.ts);
                self.flow.set_wall_clock(wall);
                match self.flow.admit(&self.record, Now(now), &mut self.admitted) {
                    Ok(()) => {
                        self.note_closable(self.record.ts - env.flow.out_of_orderness_ms, wall);
                        None
                    }
                    Err(reason) => {
                        self.clock = clock_before;
                        Some((reason, StationFlow::rejection_detail(reason).to_string()))
                    }
                }
            }
        };
        metrics
            .late_records
            .add(self.flow.counters().late_records - late_before);
        if let Some((reason, detail)) = rejection {
            metrics.dead_letter(reason);
            env.dead_letter(message, reason.as_str(), &detail)?;
        }
        self.next_offset = message.offset() + 1;
        self.since_advance += 1;
        self.changed = true;
        Ok(())
    }

    /// Puts the admitted records into their stations, counting what was applied.
    fn insert_admitted(&mut self, env: &LiveEnv) {
        let inserted = self.flow.insert(&mut self.admitted);
        env.metrics.applied.add(inserted.applied);
        env.metrics.duplicates.add(inserted.duplicates);
    }

    fn note_closable(&mut self, watermark: i64, wall: i64) {
        let minute = minute_floor(watermark);
        if self
            .closable_since
            .last_key_value()
            .is_none_or(|(m, _)| *m < minute)
        {
            self.closable_since.insert(minute, wall);
        }
    }

    /// Advances the watermarks when enough records or wall time have passed, and closes
    /// the epoch when the checkpoint interval has; true when a checkpoint was written.
    pub fn tick(&mut self, env: &mut LiveEnv, wall: i64) -> Result<bool> {
        if wall - self.last_checkpoint_ms >= env.checkpoint_interval_ms {
            return self.close_epoch(env, wall, false);
        }
        if self.since_advance >= ADVANCE_EVERY_RECORDS
            || wall - self.last_advance_ms >= ADVANCE_EVERY_MS
        {
            self.advance(env, wall)?;
        }
        Ok(false)
    }

    /// Emits what the watermarks and the clock allow: to Parquet and `station.windows`.
    pub fn advance(&mut self, env: &mut LiveEnv, wall: i64) -> Result<()> {
        self.since_advance = 0;
        self.last_advance_ms = wall;
        self.insert_admitted(env);
        let Some(now) = self.clock.now(wall) else {
            return Ok(());
        };
        let Emitted {
            mut windows,
            mut events,
        } = self.flow.advance(Now(now));
        if let Some(max_ts) = self.flow.max_ts() {
            env.metrics.set_watermark_lag(self.partition, wall - max_ts);
        }
        let base = (self.generation.min(i16::MAX as u32) << GENERATION_SHIFT) as i32;
        self.send_alerts(env, &windows, &events, wall)?;
        for w in &mut windows {
            if w.revision == 0 {
                if let Some((_, at)) = self.closable_since.range(w.window_end..).next() {
                    env.metrics
                        .emit_latency
                        .record_ms((wall - at).max(0) as u64);
                }
            } else {
                env.metrics.revisions_emitted.add(1);
            }
            w.revision += base;
            let json = serde_json::to_vec(&*w)?;
            env.send_output(OutputTopic::Windows, &w.station, &json)?;
        }
        env.metrics.windows_emitted.add(windows.len() as u64);
        for e in &mut events {
            e.revision += base;
        }
        self.windows.write(windows)?;
        self.events.write(events)?;
        self.prune_closable(now, env.flow.allowed_lateness_ms);
        Ok(())
    }

    /// Rules and downtime judged on this batch, before revisions are renumbered by
    /// generation (alerts look at first emissions only).
    fn send_alerts(
        &mut self,
        env: &mut LiveEnv,
        windows: &[StationWindow],
        events: &[DowntimeEvent],
        wall: i64,
    ) -> Result<()> {
        let underway = self.flow.drain_underway();
        // Every station refresh reports here, so this is empty exactly when the flow's
        // state stayed as it was, and then `observe` changes nothing either.
        self.changed |= !underway.is_empty();
        let alerts = self
            .alerts
            .observe(&env.alert_rules, windows, events, &underway, wall);
        for alert in &alerts {
            let json = serde_json::to_vec(alert)?;
            env.send_output(OutputTopic::Alerts, &alert.station, &json)?;
        }
        env.metrics.alerts_emitted.add(alerts.len() as u64);
        Ok(())
    }

    fn prune_closable(&mut self, now: i64, keep_ms: i64) {
        let floor = now - keep_ms.max(60_000);
        while self
            .closable_since
            .first_key_value()
            .is_some_and(|(m, _)| *m < floor)
        {
            self.closable_since.pop_first();
        }
    }

    /// Ends the epoch: emits what is due, queues the epoch's files, waits for every Kafka
    /// record to be acknowledged, then queues the checkpoint behind the files (one put,
    /// made once they are durable). `clean`: the partition is
    /// being released and nothing more will be emitted for it here.
    ///
    /// An epoch in which nothing changed is not closed unless `clean`: the last
    /// checkpoint still holds, and the epoch's files (none yet) stay open. True when a
    /// checkpoint was written.
    pub fn close_epoch(&mut self, env: &mut LiveEnv, wall: i64, clean: bool) -> Result<bool> {
        let started = std::time::Instant::now();
        self.advance(env, wall)?;
        if !self.changed && !clean {
            self.last_checkpoint_ms = wall;
            env.metrics.checkpoints_unchanged.add(1);
            return Ok(false);
        }
        self.windows.finish_epoch(self.epoch + 1)?;
        self.events.finish_epoch(self.epoch + 1)?;
        failpoint::point("epoch-files-written");
        env.producer.flush(env.flush_timeout)?;
        failpoint::point("epoch-flushed");
        self.epoch += 1;
        let checkpoint = self.checkpoint(env, wall, clean);
        // Queued behind the epoch's files: durable only after them.
        let (path, bytes) = env.checkpoints.encode(&checkpoint)?;
        env.uploads.put(env.checkpoints.store(), path, bytes)?;
        // Then readers may see the epoch's files (store::commits).
        let commit = Commit {
            partition: self.partition,
            epoch: self.epoch - 1,
        };
        env.uploads.put_then(
            env.output.store.clone(),
            Commit::path(&env.output.prefix, self.partition),
            commit.to_bytes(),
            Some(env.commits_landed.clone()),
        )?;
        self.last_checkpoint_ms = wall;
        self.changed = false;
        env.metrics.checkpoints.add(1);
        env.metrics
            .checkpoint_duration
            .record_ms(started.elapsed().as_millis() as u64);
        tracing::debug!(
            partition = self.partition,
            epoch = self.epoch,
            next_offset = self.next_offset,
            clean,
            "checkpoint"
        );
        Ok(true)
    }
}

fn epoch_writer<R: DatasetRow>(env: &LiveEnv, partition: i32, epoch: u64) -> DatasetWriter<R> {
    (env.sink.build(&env.output, &env.runtime))
        .per_epoch(partition, epoch)
        .queued(env.uploads.clone())
}

/// The reason `publish` gave a record its file reader rejected.
fn rejected_at_source(message: &BorrowedMessage<'_>) -> Option<RejectReason> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == REJECTED_HEADER)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .and_then(RejectReason::parse)
}
