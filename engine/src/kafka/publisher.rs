//! A keyed, idempotent producer that waits when librdkafka's queue is full and counts
//! what the broker did not acknowledge, so a caller can say exactly what was delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use super::KafkaArgs;

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

pub struct Publisher {
    producer: BaseProducer<DeliveryContext>,
    context: DeliveryContext,
    sent: u64,
}

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
    pub fn new(kafka: &KafkaArgs) -> anyhow::Result<Self> {
        let context = DeliveryContext::default();
        let producer = kafka
            .client_config(PRODUCER_DEFAULTS)?
            .create_with_context(context.clone())?;
        Ok(Publisher {
            producer,
            context,
            sent: 0,
        })
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
    ) -> anyhow::Result<()> {
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
        mut record: BaseRecord<'_, K, [u8]>,
    ) -> anyhow::Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = back;
                }
                Err((e, back)) => bail!("producing to {}: {e}", back.topic),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// The original key and bytes of `message` to the dead-letter topic `dlq`; why and
    /// where from in headers (`reason`, `detail`, `source_topic`, `source_partition`,
    /// `source_offset`).
    pub fn dead_letter<M: Message>(
        &mut self,
        dlq: &str,
        message: &M,
        reason: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            ("reason", reason),
            ("detail", detail),
            ("source_topic", message.topic()),
            ("source_partition", &partition),
            ("source_offset", &offset),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(dlq)
            .payload(message.payload().unwrap_or_default())
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        self.send_record(record)
    }

    /// Waits until every record queued so far is acknowledged; fails if any was not
    /// (the live engine then does not checkpoint past it).
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer.flush(timeout)?;
        self.check_delivered()
    }

    fn check_delivered(&self) -> anyhow::Result<()> {
        let failed = self.context.0.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .context
                .0
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone());
            bail!(
                "{failed} of {} records were not delivered (first error: {})",
                self.sent,
                first.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Waits until every queued record is acknowledged (or `timeout` passes); fails
    /// naming how many were not delivered and why.
    pub fn finish(self, timeout: Duration) -> anyhow::Result<u64> {
        self.producer.flush(timeout)?;
        self.check_delivered()?;
        let queued = self.producer.in_flight_count();
        if queued > 0 {
            bail!("{queued} records were still unacknowledged after {timeout:?}");
        }
        Ok(self.sent)
    }
}
