//! Checkpoints of the live engine: per partition of the signals topic, the operator
//! state and the next offset to read, written atomically (one object-store put) so a
//! restarted or rebalanced engine continues exactly where the last checkpoint was taken.
//! Offsets live here, not only in the consumer group: on assignment the driver seeks to
//! the checkpointed offset. The epoch numbers the checkpoints of a partition; output
//! files are named by epoch, so a restart replaces rather than duplicates them.

use std::io::{Read, Write};

use anyhow::Context as _;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use stationflow_operators::alerts::AlertState;
use stationflow_operators::FlowSnapshot;

use crate::store::Root;

/// Bumped when the layout changes incompatibly; a checkpoint of another format is an
/// error, never silently ignored (that would re-read the partition from the start).
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    pub format: u32,
    pub topic: String,
    pub partition: i32,
    /// The topic's partition count when written: which stations a partition answers for
    /// depends on it.
    pub partitions: i32,
    pub epoch: u64,
    /// The first offset not yet reflected in `flow`.
    pub next_offset: i64,
    pub written_at_ms: i64,
    /// Bumped by every restore from a checkpoint that was not `clean`: output written
    /// after such a checkpoint may have reached Kafka before the crash, so revisions
    /// emitted after the restore are numbered above it (SPEC §5 de-duplication).
    pub generation: u32,
    /// Written when the partition was released (revoked, shut down): nothing was emitted
    /// after it.
    pub clean: bool,
    pub flow: FlowSnapshot,
    /// Streaks of alert rules and downtime announced as started.
    #[serde(default)]
    pub alerts: AlertState,
    /// `Context::fingerprint` of the context `flow` was computed with: a restore under
    /// another context recomputes the windows inside the allowed lateness.
    #[serde(default)]
    pub context_fingerprint: u64,
}

/// Where a consumer group's checkpoints live: `<root>/<group>/<topic>/partition-<n>.json.gz`.
pub struct CheckpointStore {
    root: Root,
    group: String,
}

impl CheckpointStore {
    pub fn new(root: Root, group: &str) -> Self {
        CheckpointStore {
            root,
            group: group.to_string(),
        }
    }

    pub fn path(&self, topic: &str, partition: i32) -> Path {
        self.root
            .prefix
            .clone()
            .join(self.group.as_str())
            .join(topic)
            .join(format!("partition-{partition}.json.gz"))
    }

    /// Writes `checkpoint` in one put: a reader sees the previous one or this one.
    pub async fn save(&self, checkpoint: &PartitionCheckpoint) -> anyhow::Result<()> {
        let (path, bytes) = self.encode(checkpoint)?;
        self.root
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing checkpoint {path}"))?;
        Ok(())
    }

    /// The store checkpoints live in.
    pub fn store(&self) -> std::sync::Arc<dyn object_store::ObjectStore> {
        self.root.store.clone()
    }

    /// Where `checkpoint` goes and its bytes (gzip of its JSON).
    pub fn encode(&self, checkpoint: &PartitionCheckpoint) -> anyhow::Result<(Path, Vec<u8>)> {
        let path = self.path(&checkpoint.topic, checkpoint.partition);
        // Serialized whole first: serde's many small writes straight into the encoder
        // cost more than the compression itself.
        let json = serde_json::to_vec(checkpoint)?;
        let mut gz = GzEncoder::new(
            Vec::with_capacity(json.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&json)?;
        Ok((path, gz.finish()?))
    }

    /// The partition's latest checkpoint, `None` when it has none yet.
    pub async fn load(
        &self,
        topic: &str,
        partition: i32,
    ) -> anyhow::Result<Option<PartitionCheckpoint>> {
        let path = self.path(topic, partition);
        let bytes = match self.root.store.get(&path).await {
            Ok(got) => got.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .with_context(|| format!("reading checkpoint {path}"))?;
        let mut json = Vec::new();
        GzDecoder::new(&bytes[..])
            .read_to_end(&mut json)
            .with_context(|| format!("checkpoint {path} is not gzip"))?;
        let checkpoint: PartitionCheckpoint = serde_json::from_slice(&json)
            .with_context(|| format!("checkpoint {path} is damaged"))?;
        anyhow::ensure!(
            checkpoint.format == FORMAT,
            "checkpoint {path} has format {} where this version reads {FORMAT}",
            checkpoint.format
        );
        if let Err(e) = checkpoint.flow.check() {
            anyhow::bail!("checkpoint {path} is damaged: {e}");
        }
        anyhow::ensure!(
            checkpoint.topic == topic && checkpoint.partition == partition,
            "checkpoint {path} belongs to {}/{}",
            checkpoint.topic,
            checkpoint.partition
        );
        Ok(Some(checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Gzip of `bytes`, to plant damaged checkpoints.
    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).expect("in memory");
        gz.finish().expect("in memory")
    }
    use stationflow_operators::{synthetic, FlowConfig, Now, StationFlow};

    fn drive(flow: &mut StationFlow, records: &[stationflow_schemas::SignalRecord]) -> usize {
        let mut windows = 0;
        for r in records {
            flow.apply(r, Now(r.ts));
        }
        if let Some(last) = records.last() {
            windows += flow.advance(Now(last.ts)).windows.len();
        }
        windows
    }

    /// What partition `partition` of `partition + 1` writes at epoch 7, its next offset
    /// 3,000, with `flow`'s state.
    fn written_by(flow: &StationFlow, partition: i32) -> PartitionCheckpoint {
        PartitionCheckpoint {
            format: FORMAT,
            topic: "signals".into(),
            partition,
            partitions: partition + 1,
            epoch: 7,
            next_offset: 3_000,
            written_at_ms: 0,
            generation: 0,
            clean: false,
            flow: flow.snapshot(),
            alerts: Default::default(),
            context_fingerprint: 7,
        }
    }

    #[tokio::test]
    async fn a_restored_partition_continues_as_if_never_stopped() {
        for root in [
            "memory://cp",
            tempfile::tempdir().unwrap().path().to_str().unwrap(),
        ] {
            let store = CheckpointStore::new(
                Root::open(root, &Default::default()).unwrap(),
                "stationflow",
            );
            assert!(store.load("signals", 3).await.unwrap().is_none());

            let records: Vec<_> = synthetic::signals(8, 8_000, 1_000, 5).collect();
            let (first, rest) = records.split_at(3_000);
            let mut straight = StationFlow::new(synthetic::plant(8), FlowConfig::default());
            drive(&mut straight, first);
            let checkpoint = written_by(&straight, 3);
            store.save(&checkpoint).await.unwrap();

            let loaded = store.load("signals", 3).await.unwrap().expect("saved");
            assert_eq!((loaded.epoch, loaded.next_offset), (7, 3_000));
            assert_eq!(loaded.context_fingerprint, 7);
            let mut restored = StationFlow::restore(synthetic::plant(8), loaded.flow);
            let a = drive(&mut straight, rest);
            let b = drive(&mut restored, rest);
            assert!(a > 0);
            assert_eq!(a, b);
            assert_eq!(straight.counters(), restored.counters());
        }
    }

    /// A checkpoint of format 1 as written on 2026-12-07 (`STATIONFLOW_WRITE_FIXTURE=1`
    /// writes it again): 8 synthetic stations after 3,000 records.
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/checkpoint-format-1.json.gz"
    );

    #[tokio::test]
    async fn a_checkpoint_written_before_restores_and_continues() {
        let records: Vec<_> = synthetic::signals(8, 8_000, 1_000, 5).collect();
        let (first, rest) = records.split_at(3_000);
        let mut straight = StationFlow::new(synthetic::plant(8), FlowConfig::default());
        drive(&mut straight, first);
        let store = CheckpointStore::new(
            Root::open("memory://cp", &Default::default()).unwrap(),
            "stationflow",
        );
        if std::env::var_os("STATIONFLOW_WRITE_FIXTURE").is_some() {
            let checkpoint = written_by(&straight, 0);
            std::fs::write(FIXTURE, store.encode(&checkpoint).unwrap().1).unwrap();
        }
        let bytes = std::fs::read(FIXTURE).expect("the fixture");
        let path = store.path("signals", 0);
        store
            .root
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .unwrap();
        let loaded = store.load("signals", 0).await.unwrap().expect("there");
        assert_eq!((loaded.epoch, loaded.next_offset), (7, 3_000));
        let mut restored = StationFlow::restore(synthetic::plant(8), loaded.flow);
        let (a, b) = (drive(&mut straight, rest), drive(&mut restored, rest));
        assert!(a > 0);
        assert_eq!(a, b);
        assert_eq!(straight.counters(), restored.counters());
    }

    /// Valid JSON with a station's encoded records cut short: refused when loaded,
    /// naming the station and the block, rather than a panic when the block is read.
    #[tokio::test]
    async fn a_checkpoint_with_damaged_records_is_refused_when_loaded() {
        let mut json = Vec::new();
        let fixture = std::fs::read(FIXTURE).expect("the fixture");
        GzDecoder::new(&fixture[..]).read_to_end(&mut json).unwrap();
        let mut doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let stations = doc["flow"]["stations"].as_array_mut().expect("stations");
        let station = stations
            .iter_mut()
            .find(|s| {
                s["records"]["cold"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
            })
            .expect("a station with encoded records");
        let code = station["code"].as_str().unwrap().to_string();
        let block = &mut station["records"]["cold"][0];
        let start = block["start"].as_i64().unwrap();
        block["bytes"].as_array_mut().unwrap().pop();
        let store =
            CheckpointStore::new(Root::open("memory://cp", &Default::default()).unwrap(), "g");
        let path = store.path("signals", 0);
        let damaged = gzip(&serde_json::to_vec(&doc).unwrap());
        store
            .root
            .store
            .put(&path, PutPayload::from(damaged))
            .await
            .unwrap();
        let err = format!("{:#}", store.load("signals", 0).await.unwrap_err());
        let want = format!(
            "g/signals/partition-0.json.gz is damaged: station `{code}`: \
             the block of records from {start}: it ends early"
        );
        assert!(err.contains(&want), "{err}");
    }

    #[tokio::test]
    async fn damaged_or_foreign_checkpoints_are_errors_naming_the_object() {
        let store =
            CheckpointStore::new(Root::open("memory://cp", &Default::default()).unwrap(), "g");
        let path = store.path("signals", 0);
        store
            .root
            .store
            .put(&path, PutPayload::from(gzip(b"{\"format\":1")))
            .await
            .unwrap();
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("g/signals/partition-0.json.gz is damaged"),
            "{err:#}"
        );

        store
            .root
            .store
            .put(&path, PutPayload::from(b"plain".to_vec()))
            .await
            .unwrap();
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(format!("{err:#}").contains("is not gzip"), "{err:#}");

        let flow = StationFlow::new(synthetic::plant(2), FlowConfig::default());
        let other = written_by(&flow, 1);
        store.save(&other).await.unwrap();
        let bytes = store
            .root
            .store
            .get(&store.path("signals", 1))
            .await
            .unwrap();
        let bytes = bytes.bytes().await.unwrap();
        store
            .root
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .unwrap();
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("belongs to signals/1"),
            "{err:#}"
        );
    }
}
