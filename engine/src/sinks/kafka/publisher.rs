//! A keyed, idempotent producer that waits when librdkafka's queue is full and counts
//! what the broker did not acknowledge, so a caller can say exactly what was delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::error::{refused_for_itself, Error, Result};
use crate::kafka::KafkaArgs;

/// Delivery reports: how many records failed and the first reason.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
pub struct DeliveryContext(Arc<Deliveries>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.0.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

/// What became of an output record or a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued as it was.
    Sent,
    /// Refused as it was; its start went to the dead-letter topic.
    Truncated,
    /// Refused even cut short: logged and counted, not sent.
    Skipped,
}

/// What a dead letter keeps of a record the producer refused whole, at most: less where
/// the producer's `message.max.bytes` leaves less room.
pub const KEPT_BYTES: usize = 64 << 10;

fn owned_headers(headers: &[(&str, &str)]) -> OwnedHeaders {
    let mut owned = OwnedHeaders::new();
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: Some(*value),
        });
    }
    owned
}

pub struct Publisher {
    producer: BaseProducer<DeliveryContext>,
    context: DeliveryContext,
    sent: u64,
    /// The producer's `message.max.bytes`: what a truncated dead letter must fit in.
    max_message_bytes: usize,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Room left for a record's framing (record batch header, lengths, timestamps) under a
/// topic's `max.message.bytes`.
const FRAMING_BYTES: usize = 512;

/// Producer settings: idempotent (no duplicates on retry), Java-compatible key hashing (a
/// station lands on the same partition whichever client wrote it), batched.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    // A typo in --topic must not create a topic with the broker's default layout.
    ("allow.auto.create.topics", "false"),
    ("partitioner", "murmur2_random"),
    ("linger.ms", "20"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "500000"),
];

impl Publisher {
    /// A producer that refuses, at `send`, any record over `topic_limit` (the output
    /// topics' `max.message.bytes`, `kafka::topic_message_limit`) less its framing: the
    /// broker would refuse it after it left, with its whole batch, where the engine can
    /// no longer tell it apart. A `message.max.bytes` the user set (`-X`) wins.
    pub(super) fn with_topic_limit(kafka: &KafkaArgs, topic_limit: Option<usize>) -> Result<Self> {
        let context = DeliveryContext::default();
        let limit = topic_limit
            .map(|l| l.saturating_sub(FRAMING_BYTES).max(1000))
            .filter(|l| *l < DEFAULT_MAX_MESSAGE_BYTES)
            .map(|l| l.to_string());
        let mut defaults = PRODUCER_DEFAULTS.to_vec();
        if let Some(limit) = &limit {
            defaults.push(("message.max.bytes", limit));
        }
        let config = kafka.client_config(&defaults)?;
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let producer = config.create_with_context(context.clone())?;
        Ok(Publisher {
            producer,
            context,
            sent: 0,
            max_message_bytes,
        })
    }

    /// The largest record the producer sends (`message.max.bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Records queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn producer(&self) -> &BaseProducer<DeliveryContext> {
        &self.producer
    }

    /// Queues one record, waiting for room when the local queue is full.
    pub fn send(
        &mut self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        timestamp_ms: Option<i64>,
    ) -> Result<()> {
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        self.send_record(record)
    }

    /// Queues a record built by the caller (headers, raw keys), waiting for room.
    pub fn send_record<K: ToBytes + ?Sized>(
        &mut self,
        record: BaseRecord<'_, K, [u8]>,
    ) -> Result<()> {
        let topic = record.topic.to_string();
        match self.try_send(record)? {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::from(e).context(format!("producing to {topic}"))),
        }
    }

    /// Queues a record, waiting for room. A record the producer refuses for what it is
    /// (larger than `message.max.bytes`, invalid) comes back as `Ok(Err(why))`: the
    /// caller decides what becomes of it; any other failure is an error.
    fn try_send<K: ToBytes + ?Sized>(
        &mut self,
        mut record: BaseRecord<'_, K, [u8]>,
    ) -> Result<Result<(), KafkaError>> {
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = back;
                }
                Err((e, _)) if refused_for_itself(&e) => return Ok(Err(e)),
                Err((e, back)) => {
                    return Err(Error::from(e).context(format!("producing to {}", back.topic)))
                }
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(Ok(()))
    }

    /// An output record (a window, an alert) to `topic`. If the producer refuses it for
    /// what it is, its start goes to the dead-letter topic `dlq` instead (reason
    /// `too_large`), so that one record can never stop the engine: Parquet holds it whole.
    pub fn send_output(
        &mut self,
        topic: &str,
        key: &str,
        payload: &[u8],
        dlq: &str,
    ) -> Result<Delivery> {
        let record = BaseRecord::<str, [u8]>::to(topic).key(key).payload(payload);
        let Err(refused) = self.try_send(record)? else {
            return Ok(Delivery::Sent);
        };
        tracing::warn!(topic, key, bytes = payload.len(), %refused, "output record refused");
        let detail = format!("{topic} refused the record: {refused}");
        let headers = [
            ("reason", "too_large"),
            ("detail", detail.as_str()),
            ("source_topic", topic),
        ];
        self.send_truncated(dlq, Some(key.as_bytes()), payload, &headers)
    }

    /// The original key and bytes of `message` to the dead-letter topic `dlq`; why and
    /// where from in headers (`reason`, `detail`, `source_topic`, `source_partition`,
    /// `source_offset`). A dead letter the producer refuses (the original was close to the
    /// size limit, and the headers took it over) goes again with its bytes cut to
    /// `KEPT_BYTES` and the header `truncated_from`; if even that is refused it is logged,
    /// counted and skipped.
    pub fn dead_letter<M: Message>(
        &mut self,
        dlq: &str,
        message: &M,
        reason: &str,
        detail: &str,
    ) -> Result<Delivery> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = [
            ("reason", reason),
            ("detail", detail),
            ("source_topic", message.topic()),
            ("source_partition", &partition),
            ("source_offset", &offset),
        ];
        let payload = message.payload().unwrap_or_default();
        let record = BaseRecord::<[u8], [u8]>::to(dlq)
            .payload(payload)
            .headers(owned_headers(&headers));
        let record = match message.key() {
            Some(key) => record.key(key),
            None => record,
        };
        match self.try_send(record)? {
            Ok(()) => Ok(Delivery::Sent),
            Err(_) => self.send_truncated(dlq, message.key(), payload, &headers),
        }
    }

    /// The start of `payload` to `dlq` with `headers` and `truncated_from`; skipped (and
    /// logged) if refused even so.
    fn send_truncated(
        &mut self,
        dlq: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Delivery> {
        let length = payload.len().to_string();
        let mut all = headers.to_vec();
        all.push(("truncated_from", &length));
        let headers_len: usize = all.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let room = (self.max_message_bytes).saturating_sub(headers_len + FRAMING_BYTES);
        let key = key.map(|k| &k[..k.len().min(room / 2).min(KEPT_BYTES)]);
        let kept = (room - key.map_or(0, <[u8]>::len)).min(KEPT_BYTES);
        let mut record = BaseRecord::<[u8], [u8]>::to(dlq)
            .payload(&payload[..payload.len().min(kept)])
            .headers(owned_headers(&all));
        if let Some(key) = key {
            record = record.key(key);
        }
        match self.try_send(record)? {
            Ok(()) => Ok(Delivery::Truncated),
            Err(e) => {
                tracing::error!(dlq, bytes = payload.len(), %e, "dead letter refused; skipped");
                Ok(Delivery::Skipped)
            }
        }
    }

    /// Waits until every record queued so far is acknowledged; fails if any was not
    /// (the live engine then does not checkpoint past it).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout)?;
        self.check_delivered()
    }

    fn check_delivered(&self) -> Result<()> {
        let failed = self.context.0.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .context
                .0
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone());
            return Err(Error::outage(format!(
                "{failed} of {} records were not delivered (first error: {})",
                self.sent,
                first.unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Waits until every queued record is acknowledged (or `timeout` passes); fails
    /// naming how many were not delivered and why.
    pub fn finish(self, timeout: Duration) -> Result<u64> {
        self.producer.flush(timeout)?;
        self.check_delivered()?;
        let queued = self.producer.in_flight_count();
        if queued > 0 {
            return Err(Error::outage(format!(
                "{queued} records were still unacknowledged after {timeout:?}"
            )));
        }
        Ok(self.sent)
    }
}
