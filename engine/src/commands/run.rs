//! `stationflow run [--config <file>]`: the live engine. Settings: the embedded defaults,
//! the file, then `STATIONFLOW__SECTION__KEY` (see `stationflow show-config --defaults`).
//! Stops on SIGTERM or SIGINT after checkpointing every partition it owns.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::producer::Producer;

use crate::access::audit::AuditLog;
use crate::checkpoint::CheckpointStore;
use crate::config::LiveConfig;
use crate::driver::live::{self, LiveEnv};
use crate::kafka::{partition_count, topic_message_limit, KafkaArgs};
use crate::metrics::{self, LiveMetrics};
use crate::sinks::kafka::publisher::Publisher;
use crate::sinks::kafka::KafkaSinkConfig;
use crate::sinks::parquet::ParquetSinkConfig;
use crate::sinks::upload_queue::{QueueLimits, UploadQueue};
use crate::sources::kafka::context_topic::ContextFeed;
use crate::sources::kafka::signals::SignalsConfig;
use crate::store::Root;
use stationflow_operators::alerts::AlertRules;
use stationflow_schemas::Context;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Settings file (TOML). Every key has a documented default: `stationflow show-config
    /// --defaults`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub audit: super::audit::AuditArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logs();
    let settings = LiveConfig::load(args.config.as_deref())?;
    let context_source = (!settings.context.file.is_empty())
        .then(|| std::fs::read(&settings.context.file))
        .transpose()
        .with_context(|| format!("reading the context file {}", settings.context.file))?;
    let file_context = if settings.context.file.is_empty() {
        Context::default()
    } else {
        let context = super::load_context(Path::new(&settings.context.file))?;
        live::check_alert_rules(&context)
            .map_err(|e| anyhow::anyhow!("context {}: {e}", settings.context.file))?;
        context
    };
    let kafka = KafkaArgs {
        brokers: settings.kafka.brokers.clone(),
        options: settings
            .kafka
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    };
    let producer = KafkaSinkConfig::new(&kafka).build()?;
    let partitions = check_topics(&producer, &settings)?;
    let producer = limited_to_topics(producer, &kafka, &settings)?;
    let metrics = LiveMetrics::new();
    let (context, context_feed, refused) = if settings.kafka.context_topic.is_empty() {
        (file_context, None, Vec::new())
    } else {
        let (feed, refused) = ContextFeed::open(
            &kafka,
            &settings.kafka.group_id,
            &settings.kafka.context_topic,
            &file_context,
            &live::check_alert_rules,
        )?;
        (feed.context().clone(), Some(feed), refused)
    };
    let alert_rules = AlertRules::new(&context).map_err(anyhow::Error::msg)?;
    let runtime = super::runtime()?;
    if !settings.metrics.listen.is_empty() {
        let addr = metrics::serve(&settings.metrics.listen, metrics.clone())?;
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let flow = settings.flow();
    let output = &settings.output;
    let uploads = Arc::new(UploadQueue::start(
        QueueLimits {
            memory_bytes: u64::from(output.queue_memory_mb) << 20,
            spool_bytes: u64::from(output.spool_max_mb) << 20,
            spool_parent: if output.spool_dir.is_empty() {
                std::env::temp_dir()
            } else {
                output.spool_dir.clone().into()
            },
        },
        runtime.handle().clone(),
    )?);
    let _ = metrics.uploads.set(uploads.clone());
    let mut env = LiveEnv {
        context_fingerprint: context.fingerprint(),
        context,
        alert_rules,
        flow,
        checkpoint_interval_ms: i64::from(settings.checkpoint.interval_s) * 1000,
        flush_timeout: Duration::from_secs(60),
        partitions,
        output: Root::open(&settings.output.root, &settings.store)?,
        uploads: uploads.clone(),
        commits_landed: Default::default(),
        checkpoints: CheckpointStore::new(
            Root::open(&settings.checkpoint_root(), &settings.store)?,
            &settings.kafka.group_id,
        ),
        // Windows and events for every partition the process may be assigned.
        sink: ParquetSinkConfig::for_writers(2 * partitions.max(1) as usize),
        runtime: runtime.handle().clone(),
        producer,
        metrics,
        settings: settings.clone(),
        audit: AuditLog::new(&args.audit.audit_log),
    };
    record_start(&env, context_source.as_ref(), refused.len())?;
    let signals = SignalsConfig {
        kafka: kafka.clone(),
        topic: settings.kafka.signals_topic.clone(),
        group_id: settings.kafka.group_id.clone(),
        session_timeout_ms: settings.kafka.session_timeout_ms,
    };
    tracing::info!(
        topic = %settings.kafka.signals_topic,
        partitions,
        group = %settings.kafka.group_id,
        "starting"
    );
    for (refused, message) in &refused {
        env.refuse_context(refused, message)?;
    }
    Ok(live::run(env, signals, context_feed, stop)?)
}

/// The context the engine starts with, in the audit log: the file (its SHA-256) and the
/// topic as read to its end.
fn record_start(env: &LiveEnv, file: Option<&Vec<u8>>, refused: usize) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let settings = &env.settings;
    if let Some(bytes) = file {
        env.record_context(serde_json::json!({
            "source": "file",
            "file": settings.context.file,
            "sha256": hex::encode(Sha256::digest(bytes)),
            "status": "loaded",
            "who": super::audit::os_user(),
        }))?;
    }
    if !settings.kafka.context_topic.is_empty() {
        env.record_context(serde_json::json!({
            "source": "topic",
            "topic": settings.kafka.context_topic,
            "status": "read to its end",
            "refused": refused,
            "fingerprint": format!("{:016x}", env.context_fingerprint),
        }))?;
    }
    Ok(())
}

/// The signals topic must exist (its partition count decides which stations a partition
/// answers for), and so must the output topics: a typo must not create topics.
fn check_topics(producer: &Publisher, settings: &LiveConfig) -> anyhow::Result<i32> {
    let client = producer.producer().client();
    let timeout = Duration::from_secs(10);
    let k = &settings.kafka;
    let signals = partition_count(client, &k.signals_topic, timeout)
        .with_context(|| format!("reaching the Kafka brokers {}", k.brokers))?;
    let Some(partitions) = signals else {
        bail!(
            "the signals topic {:?} does not exist on {}: create it (stationflow publish \
             --create-partitions N does) or set kafka.signals_topic",
            k.signals_topic,
            k.brokers
        );
    };
    for (key, topic) in [
        ("windows_topic", &k.windows_topic),
        ("alerts_topic", &k.alerts_topic),
        ("dlq_topic", &k.dlq_topic),
    ] {
        if partition_count(client, topic, timeout)?.is_none() {
            bail!(
                "the output topic {topic:?} (kafka.{key}) does not exist on {}: create it",
                k.brokers
            );
        }
    }
    Ok(partitions as i32)
}

/// The producer again, limited to the output topics' `max.message.bytes` where the
/// brokers report a smaller one than the producer's own.
fn limited_to_topics(
    producer: Publisher,
    kafka: &KafkaArgs,
    settings: &LiveConfig,
) -> anyhow::Result<Publisher> {
    let k = &settings.kafka;
    let topics = [&*k.windows_topic, &*k.alerts_topic, &*k.dlq_topic];
    match topic_message_limit(kafka, &topics) {
        Ok(Some(limit)) if limit < producer.max_message_bytes() => {
            let config = KafkaSinkConfig {
                topic_limit: Some(limit),
                ..KafkaSinkConfig::new(kafka)
            };
            let limited = config.build()?;
            tracing::info!(
                topic_limit = limit,
                message_max_bytes = limited.max_message_bytes(),
                "output topics take smaller records than the producer's default"
            );
            Ok(limited)
        }
        Ok(_) => Ok(producer),
        Err(e) => {
            tracing::warn!(%e, "could not read the output topics' max.message.bytes");
            Ok(producer)
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATIONFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
