//! Checkpoints of the live engine: per partition of the signals topic, the operator
//! state and the next offset to read, written atomically (one object-store put) so a
//! restarted or rebalanced engine continues exactly where the last checkpoint was taken.
//! Offsets live here, not only in the consumer group: on assignment the driver seeks to
//! the checkpointed offset. The epoch numbers the checkpoints of a partition; output
//! files are named by epoch, so a restart replaces rather than duplicates them.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use stationflow_operators::checkpoint::AlertSnapshot;
use stationflow_operators::FlowSnapshot;

use crate::error::{Class, Classify, Domain};
use crate::store::Root;

/// The format written: bumped with every change to what a checkpoint holds, the flow's
/// tables included (`stationflow_operators::checkpoint`). Older formats are migrated
/// when read; a newer one is refused by its number, never misread.
pub const FORMAT: u32 = 2;

/// A partition's checkpoint as written (format 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionCheckpoint {
    /// First in the file, so that a reader finds it without parsing the rest.
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
    pub alerts: AlertSnapshot,
    /// `Context::fingerprint` of the context `flow` was computed with: a restore under
    /// another context recomputes the windows inside the allowed lateness.
    pub context_fingerprint: u64,
}

/// Format 1: the flow's in-memory structs as serde wrote them.
mod format1 {
    use super::*;
    use stationflow_operators::checkpoint::format1::FlowSnapshot;

    /// Written before alerts and the context's fingerprint were kept: those then start
    /// empty, and the context is taken as changed.
    #[derive(Deserialize)]
    pub struct PartitionCheckpoint {
        topic: String,
        partition: i32,
        partitions: i32,
        epoch: u64,
        next_offset: i64,
        written_at_ms: i64,
        generation: u32,
        clean: bool,
        flow: FlowSnapshot,
        #[serde(default)]
        alerts: AlertSnapshot,
        #[serde(default)]
        context_fingerprint: u64,
    }

    impl From<PartitionCheckpoint> for super::PartitionCheckpoint {
        fn from(v1: PartitionCheckpoint) -> Self {
            super::PartitionCheckpoint {
                format: super::FORMAT,
                topic: v1.topic,
                partition: v1.partition,
                partitions: v1.partitions,
                epoch: v1.epoch,
                next_offset: v1.next_offset,
                written_at_ms: v1.written_at_ms,
                generation: v1.generation,
                clean: v1.clean,
                flow: v1.flow.into(),
                alerts: v1.alerts,
                context_fingerprint: v1.context_fingerprint,
            }
        }
    }
}

/// Why a checkpoint could not be written or read; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("writing checkpoint {path}: {source}")]
    Write {
        path: Path,
        source: object_store::Error,
    },
    #[error("reading checkpoint {path}: {source}")]
    Read {
        path: Path,
        source: object_store::Error,
    },
    #[error("checkpoint {path} is not gzip: {source}")]
    NotGzip { path: Path, source: std::io::Error },
    #[error("checkpoint {path} is damaged: {reason}")]
    Damaged { path: Path, reason: String },
    #[error(
        "checkpoint {path} has format {found}, where this version reads formats 1 to \
         {FORMAT}: it was written by a newer stationflow"
    )]
    UnsupportedFormat { path: Path, found: u32 },
    #[error("checkpoint {path} belongs to {topic}/{partition}")]
    Foreign {
        path: Path,
        topic: String,
        partition: i32,
    },
    #[error("encoding checkpoint {path}: {source}")]
    Encode { path: Path, source: std::io::Error },
}

impl Classify for CheckpointError {
    fn class(&self) -> Class {
        match self {
            CheckpointError::Write { source, .. } | CheckpointError::Read { source, .. } => {
                source.class()
            }
            // The object is there but cannot be used as it is: trying again reads the
            // same bytes. Someone must remove it or run the version that wrote it.
            CheckpointError::NotGzip { .. }
            | CheckpointError::Damaged { .. }
            | CheckpointError::UnsupportedFormat { .. }
            | CheckpointError::Foreign { .. } => Class {
                domain: Domain::User,
                retry: false,
            },
            CheckpointError::Encode { .. } => Class {
                domain: Domain::Internal,
                retry: false,
            },
        }
    }
}

/// The format number of a checkpoint's JSON: read from its start, where the writer puts
/// it, else from the whole document.
fn format_of(json: &[u8]) -> Result<u32, serde_json::Error> {
    #[derive(Deserialize)]
    struct Header {
        format: u32,
    }
    let number = json.strip_prefix(b"{\"format\":").and_then(|rest| {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    });
    match number {
        Some(format) => Ok(format),
        None => serde_json::from_slice::<Header>(json).map(|h| h.format),
    }
}

/// A checkpoint's JSON in whatever format it was written, migrated to the current one.
fn decode(path: &Path, json: &[u8]) -> Result<PartitionCheckpoint, CheckpointError> {
    let damaged = |e: serde_json::Error| CheckpointError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    };
    match format_of(json).map_err(damaged)? {
        1 => serde_json::from_slice::<format1::PartitionCheckpoint>(json)
            .map(PartitionCheckpoint::from)
            .map_err(damaged),
        FORMAT => serde_json::from_slice(json).map_err(damaged),
        found => Err(CheckpointError::UnsupportedFormat {
            path: path.clone(),
            found,
        }),
    }
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
    pub async fn save(&self, checkpoint: &PartitionCheckpoint) -> Result<(), CheckpointError> {
        let (path, bytes) = self.encode(checkpoint)?;
        match self.root.store.put(&path, PutPayload::from(bytes)).await {
            Ok(_) => Ok(()),
            Err(source) => Err(CheckpointError::Write { path, source }),
        }
    }

    /// The store checkpoints live in.
    pub fn store(&self) -> std::sync::Arc<dyn object_store::ObjectStore> {
        self.root.store.clone()
    }

    /// Where `checkpoint` goes and its bytes (gzip of its JSON).
    pub fn encode(
        &self,
        checkpoint: &PartitionCheckpoint,
    ) -> Result<(Path, Vec<u8>), CheckpointError> {
        let path = self.path(&checkpoint.topic, checkpoint.partition);
        // Serialized whole first: serde's many small writes straight into the encoder
        // cost more than the compression itself.
        let encoded = serde_json::to_vec(checkpoint)
            .map_err(std::io::Error::from)
            .and_then(|json| {
                let mut gz = GzEncoder::new(
                    Vec::with_capacity(json.len() / 4),
                    flate2::Compression::fast(),
                );
                gz.write_all(&json)?;
                gz.finish()
            });
        match encoded {
            Ok(bytes) => Ok((path, bytes)),
            Err(source) => Err(CheckpointError::Encode { path, source }),
        }
    }

    /// The partition's latest checkpoint, `None` when it has none yet; refused unless
    /// it is whole and this partition's.
    pub async fn load(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        let path = self.path(topic, partition);
        let read = match self.root.store.get(&path).await {
            Ok(got) => got.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        };
        let bytes = read.map_err(|source| CheckpointError::Read {
            path: path.clone(),
            source,
        })?;
        let mut json = Vec::new();
        if let Err(source) = GzDecoder::new(&bytes[..]).read_to_end(&mut json) {
            return Err(CheckpointError::NotGzip { path, source });
        }
        let checkpoint = decode(&path, &json)?;
        if let Err(e) = checkpoint.flow.check() {
            let reason = e.to_string();
            return Err(CheckpointError::Damaged { path, reason });
        }
        if checkpoint.topic != topic || checkpoint.partition != partition {
            return Err(CheckpointError::Foreign {
                path,
                topic: checkpoint.topic,
                partition: checkpoint.partition,
            });
        }
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
            let mut restored = StationFlow::restore(synthetic::plant(8), loaded.flow).unwrap();
            let a = drive(&mut straight, rest);
            let b = drive(&mut restored, rest);
            assert!(a > 0);
            assert_eq!(a, b);
            assert_eq!(straight.counters(), restored.counters());
        }
    }

    /// A checkpoint of each format as written by the last version that wrote it (the
    /// current one with `STATIONFLOW_WRITE_FIXTURE=1`): 8 synthetic stations after
    /// 3,000 records, at epoch 7 and offset 3,000.
    fn fixture(format: u32) -> String {
        format!(
            "{}/tests/fixtures/checkpoint-format-{format}.json.gz",
            env!("CARGO_MANIFEST_DIR")
        )
    }
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/checkpoint-format-1.json.gz"
    );

    /// Checkpoints written before (format 1, by the `main` of 2026-12-07) and now
    /// restore, and the flow goes on to the same windows as one never stopped.
    #[tokio::test]
    async fn checkpoints_of_every_format_restore_and_continue() {
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
            std::fs::write(fixture(FORMAT), store.encode(&checkpoint).unwrap().1).unwrap();
        }
        let path = store.path("signals", 0);
        let (mut restored, mut loaded_flows) = (Vec::new(), Vec::new());
        for format in 1..=FORMAT {
            let bytes = std::fs::read(fixture(format)).expect("the fixture");
            store
                .root
                .store
                .put(&path, PutPayload::from(bytes))
                .await
                .unwrap();
            let loaded = store.load("signals", 0).await.unwrap().expect("there");
            assert_eq!((loaded.epoch, loaded.next_offset), (7, 3_000), "{format}");
            loaded_flows.push(loaded.flow.clone());
            restored.push(StationFlow::restore(synthetic::plant(8), loaded.flow).unwrap());
        }
        // Format 1 migrates to exactly what format 2 wrote of the same state. (Today's
        // snapshot of it may differ: what stays hot or keeps a snapshot is tuned apart
        // from the format.)
        assert!(loaded_flows.windows(2).all(|w| w[0] == w[1]));
        let windows = |flow: &mut StationFlow| {
            (rest.iter())
                .flat_map(|r| {
                    flow.apply(r, Now(r.ts));
                    flow.advance(Now(r.ts)).windows
                })
                .collect::<Vec<_>>()
        };
        let a = windows(&mut straight);
        assert!(!a.is_empty());
        for (format, flow) in (1..).zip(&mut restored) {
            assert!(windows(flow) == a, "format {format}: other windows");
            assert_eq!(straight.counters(), flow.counters(), "format {format}");
        }
    }

    /// A checkpoint of a format this version does not know is refused by its number,
    /// and one cut short or with a bit flipped is refused too: each names the object.
    #[tokio::test]
    async fn unknown_cut_or_flipped_checkpoints_are_refused_naming_the_file() {
        let store =
            CheckpointStore::new(Root::open("memory://cp", &Default::default()).unwrap(), "g");
        let path = store.path("signals", 0);
        let put = |bytes: Vec<u8>| {
            let (store, path) = (store.root.store.clone(), path.clone());
            async move { store.put(&path, PutPayload::from(bytes)).await.unwrap() }
        };
        let mut json = Vec::new();
        let fixture = std::fs::read(fixture(FORMAT)).expect("the fixture");
        GzDecoder::new(&fixture[..]).read_to_end(&mut json).unwrap();

        let newer = String::from_utf8(json.clone()).unwrap().replacen(
            &format!("{{\"format\":{FORMAT},"),
            "{\"format\":3,",
            1,
        );
        put(gzip(newer.as_bytes())).await;
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(matches!(
            err,
            CheckpointError::UnsupportedFormat { found: 3, .. }
        ));
        assert_eq!(
            err.to_string(),
            "checkpoint cp/g/signals/partition-0.json.gz has format 3, where this version \
             reads formats 1 to 2: it was written by a newer stationflow"
        );
        assert_eq!(err.class().domain, Domain::User);
        assert!(!err.class().retry);

        put(fixture[..fixture.len() / 2].to_vec()).await;
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(matches!(err, CheckpointError::NotGzip { .. }), "{err}");
        assert!(
            err.to_string().contains("g/signals/partition-0.json.gz"),
            "{err}"
        );

        // Every bit of the gzip's body and trailer: its checksum catches each.
        let mut flips = 0;
        for at in (10..fixture.len()).step_by(997) {
            let mut flipped = fixture.clone();
            flipped[at] ^= 0x10;
            put(flipped).await;
            let err = store.load("signals", 0).await.expect_err("a flipped bit");
            assert!(
                err.to_string()
                    .starts_with("checkpoint cp/g/signals/partition-0.json.gz "),
                "{err}"
            );
            flips += 1;
        }
        assert!(flips > 10);
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
        let err = store.load("signals", 0).await.unwrap_err().to_string();
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
            err.to_string()
                .contains("g/signals/partition-0.json.gz is damaged"),
            "{err}"
        );

        store
            .root
            .store
            .put(&path, PutPayload::from(b"plain".to_vec()))
            .await
            .unwrap();
        let err = store.load("signals", 0).await.unwrap_err();
        assert!(err.to_string().contains("is not gzip"), "{err}");

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
        assert!(err.to_string().contains("belongs to signals/1"), "{err}");
    }
}
