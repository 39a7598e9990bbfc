//! The signals topic, read as a consumer group. Offsets are the engine's own: whoever
//! owns the partitions (`PartitionOwner`, the live driver) says where each resumes, from
//! its checkpoint, when the group assigns it, and saves its state before the group takes
//! it away. Offsets go to the group too, but only as a hint for lag tools.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::kafka::KafkaArgs;

/// Whoever answers for the partitions the group assigns to this process.
pub trait PartitionOwner: Send + 'static {
    /// Takes over `partitions`; answers, for each, the offset it resumes from (`None`:
    /// the topic's beginning).
    fn take_over(&mut self, partitions: &[i32]) -> Result<Vec<(i32, Option<i64>)>>;
    /// Saves every partition's state and lets it go.
    fn release_all(&mut self) -> Result<()>;
    /// Keeps a failure met inside the consumer's callbacks for the caller to report.
    fn fail(&mut self, error: Error);
}

/// Where the signals are and how to join their group.
#[derive(Debug, Clone)]
pub struct SignalsConfig {
    pub kafka: KafkaArgs,
    pub topic: String,
    pub group_id: String,
    pub session_timeout_ms: u32,
}

impl SignalsConfig {
    /// Joins the group, with `owner` taking over the partitions it assigns.
    pub fn build<O: PartitionOwner>(&self, owner: Arc<Mutex<O>>) -> Result<SignalsSource<O>> {
        let config = self.kafka.client_config(&[
            ("group.id", &self.group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", &self.session_timeout_ms.to_string()),
            // A deeper prefetch queue and larger fetches: with librdkafka's defaults
            // (100,000 messages, 1 MB per partition) the consumer read ~180 k records/s
            // from tansu, with these ~820 k (benches/e2e-live.sh). `-X` can override.
            ("queued.min.messages", "1000000"),
            ("max.partition.fetch.bytes", "16777216"),
            ("fetch.max.bytes", "67108864"),
        ])?;
        let rebalancer = Rebalancer {
            owner,
            topic: self.topic.clone(),
        };
        let consumer: BaseConsumer<Rebalancer<O>> = config.create_with_context(rebalancer)?;
        consumer.subscribe(&[&self.topic])?;
        Ok(SignalsSource {
            consumer,
            topic: self.topic.clone(),
        })
    }
}

/// The group's consumer of the signals topic.
pub struct SignalsSource<O: PartitionOwner> {
    consumer: BaseConsumer<Rebalancer<O>>,
    topic: String,
}

impl<O: PartitionOwner> SignalsSource<O> {
    /// The next record, waiting up to `timeout`; rebalances happen in here.
    pub fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        self.consumer.poll(timeout)
    }

    /// Tells the group where partitions stand (`(partition, next offset)`), for lag
    /// tools; the engine itself resumes from its checkpoints.
    pub fn commit_hint(&self, offsets: &[(i32, i64)]) {
        let mut tpl = TopicPartitionList::new();
        for (p, next) in offsets {
            if *next >= 0 {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*next));
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "committing offsets to the group");
            }
        }
    }

    /// The offset after the last record of `partition`, if the broker answers in time.
    pub fn end_offset(&self, partition: i32) -> Option<i64> {
        let timeout = Duration::from_millis(200);
        let (_, high) = (self.consumer)
            .fetch_watermarks(&self.topic, partition, timeout)
            .ok()?;
        Some(high)
    }

    /// Leaves the group (after the owner has let its partitions go).
    pub fn leave(&self) {
        self.consumer.unsubscribe();
    }
}

/// The consumer's context: partitions assigned at the offsets their owner gives, and
/// released by their owner before they are revoked.
pub struct Rebalancer<O> {
    owner: Arc<Mutex<O>>,
    topic: String,
}

impl<O: PartitionOwner> ClientContext for Rebalancer<O> {}

impl<O: PartitionOwner> ConsumerContext for Rebalancer<O> {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut owner = lock(&self.owner);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.take_over(&mut *owner, tpl) {
                    Ok(()) => report(&mut *owner, consumer.assign(tpl), "assigning"),
                    // Without its state a partition must not be read: stop here.
                    Err(e) => owner.fail(e),
                }
            }
            _ => {
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(?err, "rebalance error; releasing partitions");
                }
                if let Err(e) = owner.release_all() {
                    owner.fail(e);
                }
                report(&mut *owner, consumer.unassign(), "unassigning");
            }
        }
    }
}

impl<O: PartitionOwner> Rebalancer<O> {
    fn take_over(&self, owner: &mut O, tpl: &mut TopicPartitionList) -> Result<()> {
        let elements = tpl.elements_for_topic(&self.topic);
        let partitions: Vec<i32> = elements.iter().map(|e| e.partition()).collect();
        for (p, next) in owner.take_over(&partitions)? {
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            tpl.set_partition_offset(&self.topic, p, offset)?;
        }
        Ok(())
    }
}

fn report<O: PartitionOwner>(owner: &mut O, result: KafkaResult<()>, what: &str) {
    if let Err(e) = result {
        owner.fail(Error::from(e).context(format!("{what} partitions")));
    }
}

/// The owner, even if a thread panicked holding it (the panic is reported on its own).
pub fn lock<O>(owner: &Mutex<O>) -> MutexGuard<'_, O> {
    owner.lock().unwrap_or_else(|e| e.into_inner())
}
