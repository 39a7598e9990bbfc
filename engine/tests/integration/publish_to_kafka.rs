//! `stationflow publish` against a real broker: every record arrives once, keyed by its
//! station on one partition, in the station's event-time order, with `ts` as the Kafka
//! timestamp and JSON Lines payloads byte for byte; bad records arrive without a key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use stationflow_engine::kafka::partitioner::partition_for;
use stationflow_engine::sources::files;
use stationflow_engine::sources::files::merge::MergedFiles;

use crate::broker::Broker;
use crate::common::{ok, workspace};

/// (partition, key, timestamp, payload) of each consumed message.
type Consumed = (i32, Option<String>, Option<i64>, Vec<u8>);

/// (timestamp, payload) of each station's records (key `None`: bad records), in order.
type ByKey = BTreeMap<Option<String>, Vec<(Option<i64>, Vec<u8>)>>;

/// What publish should send: (key, ts, payload) in merge order.
fn expected(inputs: &std::path::Path) -> Vec<(Option<String>, Option<i64>, Vec<u8>)> {
    let mut merged = MergedFiles::new(files::discover(&[inputs.to_path_buf()]).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some((item, original)) = merged.next_item().unwrap() {
        let decoded = item.decoded().ok();
        let json = item.position.file.contains(".jsonl");
        let payload = match decoded {
            Some(r) if !json => r.to_payload_json().into_bytes(),
            _ => original.to_vec(),
        };
        out.push((
            decoded.map(|r| r.station.clone()),
            decoded.map(|r| r.ts),
            payload,
        ));
    }
    out
}

fn consume_all(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "publish-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.len() < want && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let m = message.expect("consumed message");
            got.push((
                m.partition(),
                m.key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
                m.timestamp().to_millis(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    // Anything beyond `want` would be a duplicate: give it a moment to show up.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push((
                m.partition(),
                None,
                None,
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    got
}

#[test]
fn publish_sends_every_record_keyed_and_in_station_order() {
    let broker = Broker::start();
    let inputs = workspace().join("replay-data/signals");
    let summary = ok(&[
        "publish",
        &inputs.display().to_string(),
        "--topic",
        "signals",
        "--brokers",
        &broker.address,
        "--create-partitions",
        "4",
    ]);
    let want = expected(&inputs);
    assert!(
        summary.contains(&format!("published {} records", want.len())),
        "{summary}"
    );

    let got = consume_all(&broker.address, "signals", 4, want.len());
    assert_eq!(got.len(), want.len(), "every record once");

    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    let mut got_by_key = ByKey::new();
    for (partition, key, ts, payload) in got {
        if let Some(k) = &key {
            let first = *partition_of.entry(k.clone()).or_insert(partition);
            assert_eq!(first, partition, "station {k} stays on one partition");
            // The engine's own partitioner agrees with the producer's (librdkafka).
            assert_eq!(partition as u32, partition_for(k, 4), "partition of {k}");
        }
        got_by_key.entry(key).or_default().push((ts, payload));
    }
    let mut want_by_key = ByKey::new();
    for (key, ts, payload) in want {
        want_by_key.entry(key).or_default().push((ts, payload));
    }
    // Bad records have no key (and no event time): their order across partitions is free.
    let strip_ts = |v: &mut Vec<(Option<i64>, Vec<u8>)>| {
        v.iter_mut().for_each(|(ts, _)| *ts = None);
        v.sort();
    };
    for map in [&mut got_by_key, &mut want_by_key] {
        if let Some(v) = map.get_mut(&None) {
            strip_ts(v);
        }
    }
    assert!(
        partition_of.len() >= 15,
        "the sample's stations: {partition_of:?}"
    );
    assert!(
        partition_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "stations spread over partitions"
    );
    assert_eq!(
        got_by_key.keys().collect::<Vec<_>>(),
        want_by_key.keys().collect::<Vec<_>>()
    );
    for (key, want) in &want_by_key {
        let got = &got_by_key[key];
        assert_eq!(got.len(), want.len(), "records of {key:?}");
        let first_diff = got.iter().zip(want).position(|(g, w)| g != w);
        assert_eq!(
            first_diff, None,
            "records of {key:?} in order, with ts and payload"
        );
    }
}

#[test]
fn publish_to_a_missing_topic_says_how_to_create_it() {
    let broker = Broker::start();
    let out = crate::common::stationflow(&[
        "publish",
        &workspace()
            .join("replay-data/signals")
            .display()
            .to_string(),
        "--topic",
        "nowhere",
        "--brokers",
        &broker.address,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("topic nowhere does not exist") && err.contains("--create-partitions"),
        "{err}"
    );
}

/// The broker's `max.message.bytes` of a topic is read, so the producer can refuse a
/// record the broker would (see `kafka::topic_message_limit`).
#[test]
fn the_topics_message_limit_is_read_from_the_broker() {
    use stationflow_engine::kafka::{create_topic, topic_message_limit, KafkaArgs};
    let broker = Broker::start();
    let kafka = KafkaArgs {
        brokers: broker.address.clone(),
        options: Vec::new(),
    };
    create_topic(&kafka, "small", 1, &[("max.message.bytes", "20000")]).expect("create");
    create_topic(&kafka, "plain", 1, &[]).expect("create");
    let got = topic_message_limit(&kafka, &["small", "plain"]);
    eprintln!("PROBE {got:?}");
    assert_eq!(got.expect("described"), Some(20000));
}
