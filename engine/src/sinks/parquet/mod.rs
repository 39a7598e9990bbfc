//! The hive-partitioned Parquet datasets of SPEC §5:
//! `<root>/<dataset>/plant=<code>/date=<UTC date>/part-<n>.parquet`. Each partition's file
//! is encoded as rows arrive and written whole with one `put`: the object store makes a put
//! atomic (a local folder writes a temporary file and renames it), so a reader sees a file
//! complete or not at all. Replay numbers files per run (`part-<n>.parquet`); the live
//! engine names them by partition and checkpoint epoch (`p<partition>-e<epoch>-<n>.parquet`),
//! so a retried put replaces its file, and a partition restored from the checkpoint of
//! epoch *e* first removes its files of later epochs: rows written after the checkpoint
//! are written again, never twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use stationflow_schemas::window::{format_date32, DowntimeEvent, StationWindow};

pub mod arrow_rows;

use crate::error::{Context as _, Result};
use crate::sinks::upload_queue::UploadQueue;
use crate::store::Root;

/// A row of a dataset: which partition it belongs to and how rows become a batch.
pub trait DatasetRow: Sized {
    const DATASET: &'static str;
    fn plant(&self) -> &str;
    /// The UTC day (days since 1970-01-01) of the row's partition.
    fn day(&self) -> i32;
    fn batch(rows: &[Self]) -> RecordBatch;
}

/// The UTC day (days since 1970-01-01) whose `date=` partition holds an instant's rows.
pub fn utc_day(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(86_400_000) as i32
}

/// The `date=` partition (`YYYY-MM-DD`) of an instant.
pub fn partition_date(ts_ms: i64) -> String {
    format_date32(utc_day(ts_ms))
}

impl DatasetRow for StationWindow {
    const DATASET: &'static str = "station_windows";
    fn plant(&self) -> &str {
        &self.plant
    }
    fn day(&self) -> i32 {
        utc_day(self.window_start)
    }
    fn batch(rows: &[Self]) -> RecordBatch {
        arrow_rows::windows_batch(rows)
    }
}

impl DatasetRow for DowntimeEvent {
    const DATASET: &'static str = "downtime_events";
    fn plant(&self) -> &str {
        &self.plant
    }
    fn day(&self) -> i32 {
        utc_day(self.start)
    }
    fn batch(rows: &[Self]) -> RecordBatch {
        arrow_rows::events_batch(rows)
    }
}

/// How rows become files.
#[derive(Debug, Clone)]
pub struct ParquetSinkConfig {
    /// A partition's file is closed and put once it holds this many rows.
    pub rows_per_file: usize,
    /// Rows gathered before they are encoded into the open file (bounds row memory).
    pub chunk_rows: usize,
    /// Files open at once; past this the least recently written is finished. Rows come
    /// roughly in time order, so an old partition rarely gets more (a late revision
    /// then starts a new file).
    pub max_open_files: usize,
}

impl ParquetSinkConfig {
    /// A writer of dataset `R` under `root`, encoding on the caller's thread and putting
    /// files through `runtime`; named as a replay names them until told otherwise.
    pub fn build<R: DatasetRow>(
        &self,
        root: &Root,
        runtime: &tokio::runtime::Handle,
    ) -> DatasetWriter<R> {
        let (store, prefix) = (root.store.clone(), root.prefix.clone());
        DatasetWriter::new(store, prefix, runtime.clone(), self.clone())
    }
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        ParquetSinkConfig {
            rows_per_file: 262_144,
            chunk_rows: 4_096,
            max_open_files: 4,
        }
    }
}

/// What a sink wrote.
#[derive(Debug, Default, Clone)]
pub struct SinkStats {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
}

impl SinkStats {
    pub fn add(&mut self, other: &SinkStats) {
        self.rows += other.rows;
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// A partition's file being written: rows are encoded in chunks as they come, so memory
/// holds compressed pages, not rows.
struct OpenFile<R> {
    writer: ArrowWriter<Vec<u8>>,
    rows: usize,
    pending: Vec<R>,
    last_write: u64,
}

/// How a dataset's files are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileNames {
    /// A replay's: `part-[s<shard>of<shards>-][t<thread>-]<n>.parquet`, numbered per
    /// run. A replay owns its output folder, or a shard of it its own files.
    Replay {
        shard: Option<(u32, u32)>,
        thread: Option<usize>,
    },
    /// `p<partition>-e<epoch>-<n>.parquet`, numbered per epoch (live, per Kafka partition).
    PerEpoch { partition: i32, epoch: u64 },
}

impl FileNames {
    fn name(self, n: u64) -> String {
        match self {
            FileNames::Replay { shard, thread } => {
                let thread = thread.map_or(String::new(), |t| format!("t{t}-"));
                format!("{}{thread}{n:06}.parquet", Self::replay_prefix(shard))
            }
            FileNames::PerEpoch { partition, epoch } => {
                format!("p{partition:03}-e{epoch:010}-{n:04}.parquet")
            }
        }
    }

    /// How the names of a replay's files begin: `part-`, and `s<shard>of<shards>-` for a
    /// shard's, whose files are exactly those that begin so.
    pub fn replay_prefix(shard: Option<(u32, u32)>) -> String {
        let shard = shard.map_or(String::new(), |(i, of)| format!("s{i}of{of}-"));
        format!("part-{shard}")
    }

    /// The partition and epoch in a live file's name.
    pub fn parse_epoch(name: &str) -> Option<(i32, u64)> {
        let rest = name.strip_prefix('p')?.strip_suffix(".parquet")?;
        let mut parts = rest.splitn(3, '-');
        let partition = parts.next()?.parse().ok()?;
        let epoch = parts.next()?.strip_prefix('e')?.parse().ok()?;
        parts.next()?.parse::<u64>().ok()?;
        Some((partition, epoch))
    }
}

pub struct DatasetWriter<R: DatasetRow> {
    store: Arc<dyn ObjectStore>,
    root: Path,
    runtime: tokio::runtime::Handle,
    config: ParquetSinkConfig,
    open: BTreeMap<(String, i32), OpenFile<R>>,
    names: FileNames,
    /// Live: files go through the upload queue instead of straight to the store.
    queue: Option<Arc<UploadQueue>>,
    next_file: u64,
    writes: u64,
    pub stats: SinkStats,
}

impl<R: DatasetRow> DatasetWriter<R> {
    fn new(
        store: Arc<dyn ObjectStore>,
        root: Path,
        runtime: tokio::runtime::Handle,
        config: ParquetSinkConfig,
    ) -> Self {
        DatasetWriter {
            store,
            root,
            runtime,
            config,
            open: BTreeMap::new(),
            names: FileNames::Replay {
                shard: None,
                thread: None,
            },
            queue: None,
            next_file: 0,
            writes: 0,
            stats: SinkStats::default(),
        }
    }

    /// Names files by Kafka partition and checkpoint epoch from here on.
    pub fn per_epoch(self, partition: i32, epoch: u64) -> Self {
        self.named(FileNames::PerEpoch { partition, epoch })
    }

    /// Names files so from here on.
    pub fn named(mut self, names: FileNames) -> Self {
        self.names = names;
        self.next_file = 0;
        self
    }

    /// Hands finished files to `queue` (live) rather than putting them itself.
    pub fn queued(mut self, queue: Arc<UploadQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Writes every open file of the current epoch, then starts `next` (live: before the
    /// checkpoint of the epoch is written, so the checkpoint never runs ahead of output).
    pub fn finish_epoch(&mut self, next: u64) -> Result<()> {
        self.finish_all()?;
        if let FileNames::PerEpoch { partition, .. } = self.names {
            self.names = FileNames::PerEpoch {
                partition,
                epoch: next,
            };
            self.next_file = 0;
        }
        Ok(())
    }

    pub fn write(&mut self, rows: impl IntoIterator<Item = R>) -> Result<()> {
        for row in rows {
            let day = row.day();
            // Found by comparison, not by an owned key: a code copied per row showed in
            // profiles, and only a few files are open.
            let is_row_file = |(plant, d): &(String, i32)| *d == day && plant == row.plant();
            if !self.open.keys().any(is_row_file) {
                self.make_room()?;
                let writer = ArrowWriter::try_new(
                    Vec::new(),
                    R::batch(&[]).schema(),
                    Some(writer_properties(self.config.rows_per_file)),
                )?;
                let file = OpenFile {
                    writer,
                    rows: 0,
                    pending: Vec::new(),
                    last_write: 0,
                };
                self.open.insert((row.plant().to_string(), day), file);
            }
            self.writes += 1;
            let (key, file) = (self.open.iter_mut())
                .find(|(key, _)| is_row_file(key))
                .expect("opened above");
            file.last_write = self.writes;
            file.pending.push(row);
            file.rows += 1;
            if file.pending.len() >= self.config.chunk_rows {
                file.writer.write(&R::batch(&file.pending))?;
                // Cleared rather than taken: the next chunk reuses the allocation.
                file.pending.clear();
            }
            if file.rows >= self.config.rows_per_file {
                let key = key.clone();
                self.finish(&key)?;
            }
        }
        Ok(())
    }

    fn make_room(&mut self) -> Result<()> {
        while self.open.len() >= self.config.max_open_files.max(1) {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.last_write)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => self.finish(&key)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Writes every open file.
    pub fn close(mut self) -> Result<SinkStats> {
        self.finish_all()?;
        Ok(self.stats)
    }

    fn finish_all(&mut self) -> Result<()> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for key in keys {
            self.finish(&key)?;
        }
        Ok(())
    }

    fn finish(&mut self, key: &(String, i32)) -> Result<()> {
        let Some(mut file) = self.open.remove(key) else {
            return Ok(());
        };
        if !file.pending.is_empty() {
            file.writer.write(&R::batch(&file.pending))?;
        }
        let bytes = file.writer.into_inner()?;
        let name = self.names.name(self.next_file);
        let path = partition_path(&self.root, R::DATASET, &key.0, key.1, &name);
        self.next_file += 1;
        self.stats.rows += file.rows as u64;
        self.stats.files += 1;
        self.stats.bytes += bytes.len() as u64;
        let store = self.store.clone();
        match &self.queue {
            Some(queue) => queue.put(store, path, bytes)?,
            None => self
                .runtime
                .block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
                .map(|_| ())
                .with_context(|| format!("writing {} output", R::DATASET))?,
        }
        crate::failpoint::point("parquet-file-written");
        Ok(())
    }
}

/// `<root>/<dataset>/plant=<plant>/date=<YYYY-MM-DD>/<file>`.
pub fn partition_path(root: &Path, dataset: &str, plant: &str, day: i32, file: &str) -> Path {
    let parts = [
        PathPart::from(dataset),
        PathPart::from(format!("plant={plant}")),
        PathPart::from(format!("date={}", format_date32(day))),
        PathPart::from(file),
    ];
    root.parts().chain(parts).collect()
}

/// Deletes partition `partition`'s files of epochs after `epoch` from `dataset` (live,
/// on restoring the checkpoint of `epoch`: what was written after it is written again).
/// Returns how many files went.
pub async fn remove_epochs_after(
    store: &dyn ObjectStore,
    root: &Path,
    dataset: &str,
    partition: i32,
    epoch: u64,
) -> Result<u64> {
    use futures::TryStreamExt;
    let prefix = root.clone().join(dataset);
    let files: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let mut removed = 0;
    for meta in files {
        let later = meta
            .location
            .filename()
            .and_then(FileNames::parse_epoch)
            .is_some_and(|(p, e)| p == partition && e > epoch);
        if later {
            store
                .delete(&meta.location)
                .await
                .with_context(|| format!("removing {}", meta.location))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Snappy, page statistics, row groups of up to `rows` rows.
pub fn writer_properties(rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(rows.max(1)))
        .build()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use stationflow_operators::{synthetic, FlowConfig, Now, StationFlow};

    fn windows() -> Vec<StationWindow> {
        synthetic_windows(4, 2_000, 3)
    }

    /// The windows of `stations` synthetic stations over `records` records.
    pub(crate) fn synthetic_windows(
        stations: usize,
        records: usize,
        seed: u64,
    ) -> Vec<StationWindow> {
        let mut flow = StationFlow::new(synthetic::plant(stations), FlowConfig::default());
        let records: Vec<_> = synthetic::signals(stations, records, 1_000, seed).collect();
        for r in &records {
            flow.apply(r, Now(r.ts));
        }
        flow.finish(Now(records.last().unwrap().ts)).windows
    }

    fn names(runtime: &tokio::runtime::Runtime, store: &InMemory) -> Vec<String> {
        let files: Vec<_> = runtime
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .unwrap();
        let mut names: Vec<String> = files
            .iter()
            .map(|m| m.location.filename().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn epoch_files_are_replaced_when_rewritten_and_removed_after_a_restore() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = Arc::new(InMemory::new());
        let root = Path::from("out");
        let rows = windows();
        let writer = |partition, epoch| {
            DatasetWriter::<StationWindow>::new(
                store.clone(),
                root.clone(),
                runtime.handle().clone(),
                ParquetSinkConfig::default(),
            )
            .per_epoch(partition, epoch)
        };
        let mut p0 = writer(0, 1);
        p0.write(rows.clone()).unwrap();
        p0.finish_epoch(2).unwrap();
        p0.write(rows.clone()).unwrap();
        p0.close().unwrap();
        let mut p1 = writer(1, 2);
        p1.write(rows.clone()).unwrap();
        p1.close().unwrap();
        let before = names(&runtime, &store);
        // Two plants: two files per epoch.
        let expected = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .flat_map(|n| [format!("{n}-0000.parquet"), format!("{n}-0001.parquet")])
                .collect()
        };
        assert_eq!(
            before,
            expected(&["p000-e0000000001", "p000-e0000000002", "p001-e0000000002"])
        );

        // A put retried with the same rows replaces its file.
        let mut again = writer(0, 2);
        again.write(rows.clone()).unwrap();
        again.close().unwrap();
        assert_eq!(names(&runtime, &store), before);

        let removed = runtime
            .block_on(remove_epochs_after(&*store, &root, "station_windows", 0, 1))
            .unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            names(&runtime, &store),
            expected(&["p000-e0000000001", "p001-e0000000002"])
        );
    }

    #[test]
    fn only_live_names_carry_an_epoch() {
        assert_eq!(
            FileNames::parse_epoch("p003-e0000000042-0001.parquet"),
            Some((3, 42))
        );
        assert_eq!(FileNames::parse_epoch("part-000001.parquet"), None);
        assert_eq!(FileNames::parse_epoch("p3-e4.parquet"), None);
    }
}
