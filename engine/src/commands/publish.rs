//! `stationflow publish <files> --topic signals [--speed X | --rate N]`: history into
//! Kafka, the way data engineers feed a test pipeline. Records go in event-time order
//! (the replay merge), keyed by station, with the Kafka timestamp from `ts`. JSON Lines
//! records go as they were written; long CSV and Parquet rows go as §2 JSON payloads.
//! Records that do not decode are sent as they are (without key), with the reader's
//! verdict in the `stationflow.rejected` header and the Kafka timestamp of the record
//! before them, so the engine dead-letters them for the reason replay would (a file
//! record without `ts` must not take the publisher's clock as its event time).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use crate::kafka::{create_topic, partition_count, KafkaArgs, REJECTED_HEADER};
use crate::sinks::kafka::publisher::Publisher;
use crate::sinks::kafka::KafkaSinkConfig;
use crate::sources::files::{FilesConfig, Format, Item};

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Signal files or folders (.jsonl, .jsonl.gz, .csv, .csv.gz, .parquet).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long, default_value = "signals")]
    pub topic: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Create the topic with this many partitions if it does not exist (replication 1).
    #[arg(long)]
    pub create_partitions: Option<i32>,
    /// Pace by event time, X times faster than it happened (1 = real time).
    #[arg(long, conflicts_with = "rate")]
    pub speed: Option<f64>,
    /// Pace at N records per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to wait for the broker to acknowledge everything at the end.
    #[arg(long, default_value_t = 120)]
    pub flush_timeout_s: u64,
}

pub fn run(args: PublishArgs) -> anyhow::Result<()> {
    if args.speed.is_some_and(|s| s <= 0.0) || args.rate.is_some_and(|r| r <= 0.0) {
        bail!("--speed and --rate must be positive");
    }
    let mut inputs = FilesConfig::new(&args.inputs).build()?;
    let mut publisher = KafkaSinkConfig::new(&args.kafka).build()?;
    ensure_topic(&args, &publisher)?;
    let started = Instant::now();
    let mut pacer = Pacer::new(args.speed, args.rate);
    let mut payloads = PayloadKind::default();
    let mut last_ts = None;
    while let Some((item, original)) = inputs.next_item()? {
        let payload = payloads.payload(item, original);
        match item.decoded() {
            Ok(record) => {
                pacer.wait(publisher.sent(), Some(record.ts));
                last_ts = Some(record.ts);
                publisher.send(&args.topic, Some(&record.station), &payload, last_ts)?;
            }
            Err(rejection) => {
                let headers = OwnedHeaders::new().insert(Header {
                    key: REJECTED_HEADER,
                    value: Some(rejection.reason.as_str()),
                });
                let mut record = BaseRecord::<str, [u8]>::to(&args.topic)
                    .payload(&payload)
                    .headers(headers);
                if let Some(ts) = last_ts {
                    record = record.timestamp(ts);
                }
                publisher.send_record(record)?;
            }
        }
    }
    let sent = publisher.finish(Duration::from_secs(args.flush_timeout_s))?;
    let secs = started.elapsed().as_secs_f64();
    super::print(&format!(
        "published {sent} records from {} files ({:.1} MB) to topic {} in {secs:.2} s: {:.0} records/s\n",
        inputs.files,
        inputs.bytes as f64 / 1e6,
        args.topic,
        sent as f64 / secs.max(1e-9),
    ))
}

fn ensure_topic(args: &PublishArgs, publisher: &Publisher) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    if partition_count(publisher.producer().client(), &args.topic, timeout)?.is_some() {
        return Ok(());
    }
    match args.create_partitions {
        Some(partitions) => Ok(create_topic(&args.kafka, &args.topic, partitions, &[])?),
        None => bail!(
            "topic {} does not exist on {}: create it, or pass --create-partitions N",
            args.topic,
            args.kafka.brokers
        ),
    }
}

/// Whether each input file's records are sent as written (JSON Lines) or re-encoded.
#[derive(Default)]
struct PayloadKind {
    file: Option<Arc<str>>,
    as_written: bool,
}

impl PayloadKind {
    fn payload<'a>(&mut self, item: &Item, original: &'a [u8]) -> Cow<'a, [u8]> {
        let file = &item.position.file;
        if !self.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            self.as_written = matches!(
                Format::of(Path::new(&**file)),
                Some(Format::JsonLines { .. })
            );
            self.file = Some(file.clone());
        }
        match item.decoded() {
            Ok(record) if !self.as_written => Cow::Owned(record.to_payload_json().into_bytes()),
            _ => Cow::Borrowed(original),
        }
    }
}

/// Sleeps to keep a pace: by event time (`--speed`) or by count (`--rate`).
struct Pacer {
    speed: Option<f64>,
    rate: Option<f64>,
    started: Instant,
    first_ts: Option<i64>,
}

impl Pacer {
    fn new(speed: Option<f64>, rate: Option<f64>) -> Self {
        Pacer {
            speed,
            rate,
            started: Instant::now(),
            first_ts: None,
        }
    }

    fn wait(&mut self, sent: u64, ts: Option<i64>) {
        let due_s = match (self.speed, self.rate, ts) {
            (Some(speed), _, Some(ts)) => {
                let first = *self.first_ts.get_or_insert(ts);
                (ts - first).max(0) as f64 / 1000.0 / speed
            }
            (_, Some(rate), _) => sent as f64 / rate,
            _ => return,
        };
        let ahead = due_s - self.started.elapsed().as_secs_f64();
        if ahead > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(ahead));
        }
    }
}
