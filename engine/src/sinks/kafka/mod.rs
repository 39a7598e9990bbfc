//! The Kafka sink: a keyed, idempotent producer (`publisher`), for the live engine's
//! output topics (windows, alerts, dead letters) and for `publish`.

pub mod publisher;

use crate::error::Result;
use crate::kafka::KafkaArgs;
use publisher::Publisher;

/// How to reach the broker, and the largest record the topics written take.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub kafka: KafkaArgs,
    /// The topics' `max.message.bytes`, when smaller than the producer's default: a larger
    /// record is refused at `send` rather than by the broker with its whole batch.
    pub topic_limit: Option<usize>,
}

impl KafkaSinkConfig {
    /// A sink with the producer's own limits.
    pub fn new(kafka: &KafkaArgs) -> Self {
        KafkaSinkConfig {
            kafka: kafka.clone(),
            topic_limit: None,
        }
    }

    pub fn build(&self) -> Result<Publisher> {
        Publisher::with_topic_limit(&self.kafka, self.topic_limit)
    }
}
