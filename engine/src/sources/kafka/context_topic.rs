//! The compacted context topic, live (SPEC §3): read from its beginning to its end
//! before any signal is read, then followed. The context it makes is
//! `stationflow_schemas::context_topic`'s; this module is the Kafka side.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use stationflow_schemas::context_topic::{ContextCheck, ContextTopic, RefusedRecord, TopicRecord};
use stationflow_schemas::Context;

use crate::error::{bail, Context as _, Error, Result};
use crate::kafka::{partition_count, KafkaArgs};

/// How long reading the topic to its end may take at start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Records taken per `poll`, so a burst of context does not stall the signals.
const POLL_BATCH: usize = 256;

pub struct ContextFeed {
    consumer: BaseConsumer,
    state: ContextTopic,
}

/// What a record of the topic did.
pub enum ContextEvent {
    /// The context changed; windows from `from` on may differ. `key`, `partition` and
    /// `offset` name the record, for the audit log.
    Changed {
        from: i64,
        key: String,
        partition: i32,
        offset: i64,
    },
    /// Refused: the context is as it was. The record goes to the dead-letter topic.
    Refused(RefusedRecord, OwnedMessage),
}

impl ContextFeed {
    /// Reads `topic` to its end on top of the file's context `base`. Returns the feed and
    /// the records refused on the way.
    pub fn open(
        kafka: &KafkaArgs,
        group_id: &str,
        topic: &str,
        base: &Context,
        check: ContextCheck<'_>,
    ) -> Result<(Self, Vec<(RefusedRecord, OwnedMessage)>)> {
        // Assigned, never subscribed: the group id only names the client.
        let consumer: BaseConsumer = kafka
            .client_config(&[
                ("group.id", &format!("{group_id}.context")),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
            ])?
            .create()?;
        let timeout = Duration::from_secs(10);
        let Some(partitions) = partition_count(consumer.client(), topic, timeout)? else {
            bail!(
                "the context topic {topic:?} (kafka.context_topic) does not exist on {}: create \
                 it (compacted) or unset kafka.context_topic",
                kafka.brokers
            );
        };
        let mut unread = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .with_context(|| format!("reading the offsets of {topic}/{p}"))?;
            if high > low {
                unread.insert(p, high);
            }
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let messages = read_to_end(&consumer, topic, unread)?;
        let records: Vec<TopicRecord<'_>> = messages.iter().map(record_of).collect();
        let mut state = ContextTopic::new(base, &format!("context topic {topic}"));
        let refused = state.load(&records, check);
        let refused = refused
            .into_iter()
            .map(|(i, r)| (r, messages[i].clone()))
            .collect();
        tracing::info!(
            topic,
            records = messages.len(),
            "context topic read to its end"
        );
        Ok((ContextFeed { consumer, state }, refused))
    }

    pub fn context(&self) -> &Context {
        self.state.context()
    }

    /// Applies what arrived since the last call, without waiting.
    pub fn poll(&mut self, check: ContextCheck<'_>) -> Vec<ContextEvent> {
        let mut events = Vec::new();
        for _ in 0..POLL_BATCH {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "context topic");
                    break;
                }
                Some(Ok(m)) => m.detach(),
            };
            match self.state.apply(&record_of(&message), check) {
                Ok(Some(from)) => events.push(ContextEvent::Changed {
                    from,
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                }),
                Ok(None) => {}
                Err(refused) => events.push(ContextEvent::Refused(refused, message)),
            }
        }
        events
    }
}

/// Every record up to each partition's high watermark at start, each partition in
/// offset order (a key's records are on one partition; order across partitions is not
/// defined, so a context topic is best given one partition).
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    mut unread: BTreeMap<i32, i64>,
) -> Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    let mut messages = Vec::new();
    while !unread.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                if unread
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    unread.remove(&m.partition());
                }
                messages.push(m.detach());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                unread.remove(&p);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "reading the context topic"),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(Error::outage(format!(
                "reading the context topic {topic:?} to its end took over {LOAD_TIMEOUT:?}; \
                 partitions {:?} unfinished",
                unread.keys().collect::<Vec<_>>()
            )));
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(messages)
}

fn record_of(m: &OwnedMessage) -> TopicRecord<'_> {
    TopicRecord {
        key: m.key(),
        value: m.payload(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
    }
}
