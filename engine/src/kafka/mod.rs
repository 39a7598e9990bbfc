//! Kafka plumbing shared by the commands that talk to a broker: client settings (with
//! librdkafka options passed through for TLS and SASL) and topic checks.

pub mod partitioner;

use std::time::Duration;

use crate::error::{bail, Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientContext;

/// Header of a record that `publish` read from a file and its reader rejected; the value
/// is the reason (SPEC §2). The live engine dead-letters such records for that reason.
pub const REJECTED_HEADER: &str = "stationflow.rejected";

/// Where the broker is and how to talk to it.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated.
    #[arg(long, env = "STATIONFLOW_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// A librdkafka setting, repeatable (TLS, SASL, timeouts): -X security.protocol=SSL
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

impl KafkaArgs {
    /// A client configuration: `defaults` first, then the user's `-X` settings.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (n, option) in self.options.iter().enumerate() {
            let Some((key, value)) = option.split_once('=') else {
                // Not echoed: it may be a secret with its `=` mistyped.
                bail!(
                    "Kafka option {} (-X) is not KEY=VALUE; its text is not shown, as it may hold a secret",
                    n + 1
                );
            };
            config.set(key.trim(), value.trim());
        }
        Ok(config)
    }
}

/// The partition count of `topic`, or `None` when the broker does not know it.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .context("reading topic metadata from the broker")?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0))
}

/// Creates `topic` with `partitions` partitions (replication factor 1: for test and
/// single-broker setups; production topics are created by their owners).
pub fn create_topic(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config(&[])?.create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(&[new], &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// The smallest `max.message.bytes` of `topics` as the brokers report it, or `None` when
/// they do not say (a broker without DescribeConfigs, a topic without the setting). A
/// record over it is refused by the broker after it left the producer, where the engine
/// can no longer tell it from its batch; the producer's own limit set to it refuses such
/// a record at `send`, where it becomes a truncated dead letter (`Publisher::send_output`).
pub fn topic_message_limit(kafka: &KafkaArgs, topics: &[&str]) -> Result<Option<usize>> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = kafka.client_config(&[])?.create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let specifiers: Vec<ResourceSpecifier> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = runtime.block_on(admin.describe_configs(&specifiers, &options))?;
    let mut limit: Option<usize> = None;
    for result in results {
        let Ok(resource) = result else { continue };
        let value = resource
            .get("max.message.bytes")
            .and_then(|entry| entry.value.as_deref())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(v) = value {
            limit = Some(limit.map_or(v, |l| l.min(v)));
        }
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseProducer;

    fn args(options: &[&str]) -> KafkaArgs {
        KafkaArgs {
            brokers: "127.0.0.1:1".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    /// SPEC §7: TLS and SASL settings pass through to librdkafka, which must be built
    /// with them (a client checks its settings when created, before connecting).
    #[test]
    fn tls_and_sasl_settings_pass_through_to_a_client() {
        let sasl = |mechanism: &'static str| {
            vec![
                "security.protocol=SASL_SSL",
                mechanism,
                "sasl.username=stationflow",
                "sasl.password=secret",
            ]
        };
        for options in [
            vec![
                "security.protocol=SSL",
                "ssl.endpoint.identification.algorithm=https",
            ],
            sasl("sasl.mechanisms=PLAIN"),
            sasl("sasl.mechanisms=SCRAM-SHA-256"),
            sasl("sasl.mechanisms=SCRAM-SHA-512"),
        ] {
            let created: Result<BaseProducer, _> =
                args(&options).client_config(&[]).unwrap().create();
            assert!(created.is_ok(), "{options:?}: {:?}", created.err());
        }
    }

    #[test]
    fn an_option_that_is_not_key_value_is_refused_without_echoing_it() {
        let err = args(&["acks=all", "sasl.password:hunter2"])
            .client_config(&[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("option 2 (-X) is not KEY=VALUE"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_users_options_override_the_defaults() {
        let config = args(&["queued.min.messages=10"])
            .client_config(&[("queued.min.messages", "1000000"), ("client.id", "x")])
            .unwrap();
        assert_eq!(config.get("queued.min.messages"), Some("10"));
        assert_eq!(config.get("client.id"), Some("x"));
    }
}
