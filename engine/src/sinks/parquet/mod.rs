//! The hive-partitioned Parquet datasets of SPEC §5:
//! `<root>/<dataset>/plant=<code>/date=<UTC date>/part-<n>.parquet`. Each partition's file
//! gathers its rows in a spool (an unnamed temporary file of LZ4-compressed Arrow IPC) as
//! they arrive, is encoded to Parquet when it is finished, and is written whole with one
//! `put`: the object store makes a put atomic (a local folder writes a temporary file and
//! renames it), so a reader sees a file complete or not at all. An open file costs a
//! descriptor and a few rows of memory, so a replay over many plants keeps a file per plant
//! and day open, each encoded when finished into row groups as large as with one plant.
//! Replay numbers files per run (`part-<n>.parquet`); the live engine names them by
//! partition and checkpoint epoch (`p<partition>-e<epoch>-<n>.parquet`),
//! so a retried put replaces its file, and a partition restored from the checkpoint of
//! epoch *e* first removes its files of later epochs: rows written after the checkpoint
//! are written again, never twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek};
use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;
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
    /// Rows a file gathers in memory before they go to its spool.
    pub chunk_rows: usize,
    /// Rows in memory in all open files together; past this the file with the most
    /// spools them (bounds row memory however many files are open).
    pub pending_rows: usize,
    /// Files open at once, each holding a descriptor; past this the least recently
    /// written is finished. Rows come roughly in time order, so an old partition rarely
    /// gets more (a late revision then starts a new file).
    pub max_open_files: usize,
}

impl ParquetSinkConfig {
    /// The defaults, with no more open files in `writers` writers together than half the
    /// process may open (a spool file each), and at least 4 each.
    pub fn for_writers(writers: usize) -> Self {
        let config = ParquetSinkConfig::default();
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1_024, |(soft, _)| soft);
        let each = usize::try_from(limit / 2).unwrap_or(usize::MAX) / writers.max(1);
        ParquetSinkConfig {
            max_open_files: each.clamp(4, config.max_open_files),
            ..config
        }
    }

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
            pending_rows: 16_384,
            max_open_files: 256,
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

/// A partition's file being written: rows wait in memory in chunks and go to the spool,
/// so memory holds at most a chunk of rows whatever the file's size.
struct OpenFile<R> {
    spool: StreamWriter<BufWriter<File>>,
    rows: usize,
    pending: Vec<R>,
    last_write: u64,
}

impl<R: DatasetRow> OpenFile<R> {
    fn new() -> Result<Self> {
        let file = tempfile::tempfile().context("creating a spool file for Parquet output")?;
        let options =
            IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
        let schema = R::batch(&[]).schema();
        let spool = StreamWriter::try_new_with_options(BufWriter::new(file), &schema, options)?;
        Ok(OpenFile {
            spool,
            rows: 0,
            pending: Vec::new(),
            last_write: 0,
        })
    }

    /// Moves the waiting rows to the spool; returns how many there were.
    fn spool(&mut self) -> Result<usize> {
        let rows = self.pending.len();
        if rows > 0 {
            self.spool.write(&R::batch(&self.pending))?;
            // Cleared rather than taken: the next chunk reuses the allocation.
            self.pending.clear();
        }
        Ok(rows)
    }

    /// The file's rows read back from the spool and encoded, in row groups of up to
    /// `rows_per_group` rows.
    fn into_parquet(mut self, rows_per_group: usize) -> Result<Vec<u8>> {
        self.spool()?;
        let mut file = (self.spool.into_inner()?.into_inner())
            .map_err(|e| e.into_error())
            .context("flushing a Parquet spool file")?;
        file.rewind()?;
        let spooled = StreamReader::try_new(BufReader::new(file), None)?;
        let properties = writer_properties(rows_per_group);
        let mut writer = ArrowWriter::try_new(Vec::new(), spooled.schema(), Some(properties))?;
        for batch in spooled {
            writer.write(&batch?)?;
        }
        Ok(writer.into_inner()?)
    }
}

/// The open files, by plant and UTC day: found by a plant's code without copying it.
type OpenFiles<R> = BTreeMap<Arc<str>, BTreeMap<i32, OpenFile<R>>>;

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
    open: OpenFiles<R>,
    /// Rows in memory in open files.
    pending_rows: usize,
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
            pending_rows: 0,
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
            if self.file(row.plant(), day).is_none() {
                self.make_room()?;
                let file = OpenFile::new()?;
                let days = self.open.entry(Arc::from(row.plant())).or_default();
                days.insert(day, file);
            }
            self.writes += 1;
            let (writes, rows_per_file, chunk_rows) = (
                self.writes,
                self.config.rows_per_file,
                self.config.chunk_rows,
            );
            let file = self.file_mut(row.plant(), day);
            file.last_write = writes;
            file.rows += 1;
            let full = file.rows >= rows_per_file;
            let chunk = file.pending.len() + 1 >= chunk_rows;
            let plant = (full || chunk).then(|| Arc::<str>::from(row.plant()));
            file.pending.push(row);
            self.pending_rows += 1;
            if let Some(plant) = plant {
                if full {
                    self.finish(&plant, day)?;
                } else {
                    self.spool(&plant, day)?;
                }
            }
            if self.pending_rows >= self.config.pending_rows.max(1) {
                self.spool_most()?;
            }
        }
        Ok(())
    }

    fn file(&self, plant: &str, day: i32) -> Option<&OpenFile<R>> {
        self.open.get(plant)?.get(&day)
    }

    fn files(&self) -> impl Iterator<Item = (&Arc<str>, i32, &OpenFile<R>)> {
        (self.open.iter()).flat_map(|(plant, days)| days.iter().map(move |(d, f)| (plant, *d, f)))
    }

    /// Spools the rows of the file with the most in memory.
    fn spool_most(&mut self) -> Result<()> {
        let most = (self.files())
            .max_by_key(|(_, _, file)| file.pending.len())
            .map(|(plant, day, _)| (plant.clone(), day));
        match most {
            Some((plant, day)) => self.spool(&plant, day),
            None => Ok(()),
        }
    }

    fn spool(&mut self, plant: &str, day: i32) -> Result<()> {
        self.pending_rows -= self.file_mut(plant, day).spool()?;
        Ok(())
    }

    fn file_mut(&mut self, plant: &str, day: i32) -> &mut OpenFile<R> {
        (self.open.get_mut(plant))
            .and_then(|days| days.get_mut(&day))
            .expect("an open file")
    }

    fn make_room(&mut self) -> Result<()> {
        // Counted, not tracked: only when a file opens, over at most a few hundred.
        while self.files().count() >= self.config.max_open_files.max(1) {
            let oldest = (self.files())
                .min_by_key(|(_, _, f)| f.last_write)
                .map(|(plant, day, _)| (plant.clone(), day));
            match oldest {
                Some((plant, day)) => self.finish(&plant, day)?,
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
        let keys: Vec<_> = (self.files())
            .map(|(plant, day, _)| (plant.clone(), day))
            .collect();
        for (plant, day) in keys {
            self.finish(&plant, day)?;
        }
        Ok(())
    }

    fn finish(&mut self, plant: &str, day: i32) -> Result<()> {
        let Some(days) = self.open.get_mut(plant) else {
            return Ok(());
        };
        let Some(file) = days.remove(&day) else {
            return Ok(());
        };
        if days.is_empty() {
            self.open.remove(plant);
        }
        self.pending_rows -= file.pending.len();
        let rows = file.rows;
        let bytes = file.into_parquet(self.config.rows_per_file)?;
        let name = self.names.name(self.next_file);
        let path = partition_path(&self.root, R::DATASET, plant, day, &name);
        self.next_file += 1;
        self.stats.rows += rows as u64;
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

    /// `windows` spread over `plants` plants, station by station as a drain spreads them.
    fn over_plants(windows: &[StationWindow], plants: usize) -> Vec<StationWindow> {
        let codes: Vec<Arc<str>> = (0..plants).map(|p| format!("P {p:03}#").into()).collect();
        (windows.iter().enumerate())
            .map(|(i, w)| StationWindow {
                plant: codes[i % plants].clone(),
                ..w.clone()
            })
            .collect()
    }

    /// Every file under `store`: its partition folder, rows and row groups.
    fn files(runtime: &tokio::runtime::Runtime, store: &InMemory) -> Vec<(String, usize, usize)> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let metas = runtime.block_on(store.list(None).try_collect::<Vec<_>>());
        (metas.unwrap().iter())
            .map(|meta| {
                let bytes = runtime.block_on(async {
                    store
                        .get(&meta.location)
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap()
                });
                let reader = SerializedFileReader::new(bytes).unwrap();
                let meta_data = reader.metadata().file_metadata();
                let folder = meta.location.prefix_match(&Path::from("out")).unwrap();
                let folder: Vec<_> = folder.map(|p| p.as_ref().to_string()).collect();
                let groups = reader.metadata().num_row_groups();
                (folder[..3].join("/"), meta_data.num_rows() as usize, groups)
            })
            .collect()
    }

    fn write_all(
        config: ParquetSinkConfig,
        rows: &[StationWindow],
    ) -> (tokio::runtime::Runtime, Arc<InMemory>, SinkStats) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = Arc::new(InMemory::new());
        let mut writer = DatasetWriter::<StationWindow>::new(
            store.clone(),
            Path::from("out"),
            runtime.handle().clone(),
            config,
        );
        // In slices, as replay drains them.
        for slice in rows.chunks(97) {
            writer.write(slice.iter().cloned()).unwrap();
        }
        let stats = writer.close().unwrap();
        (runtime, store, stats)
    }

    #[test]
    fn many_plants_written_together_get_one_file_each() {
        let rows = over_plants(&synthetic_windows(120, 6_000, 5), 60);
        let (runtime, store, stats) = write_all(ParquetSinkConfig::default(), &rows);
        let files = files(&runtime, &store);
        let mut partitions: Vec<_> = files.iter().map(|(folder, ..)| folder.clone()).collect();
        partitions.sort();
        let all = partitions.len();
        partitions.dedup();
        assert_eq!(partitions.len(), all, "a partition written twice");
        assert!(all >= 60, "{all} partitions");
        assert_eq!(stats.files, all as u64);
        assert!(partitions[0].starts_with("station_windows/plant=P 000%23/date="));
        let rows_written: usize = files.iter().map(|(_, rows, _)| rows).sum();
        assert_eq!(rows_written, rows.len());
        assert_eq!(stats.rows, rows.len() as u64);
    }

    #[test]
    fn rows_spooled_in_small_chunks_are_encoded_in_whole_row_groups() {
        let rows = over_plants(&synthetic_windows(40, 8_000, 6), 4);
        let config = ParquetSinkConfig {
            chunk_rows: 8,
            pending_rows: 20,
            ..ParquetSinkConfig::default()
        };
        let (runtime, store, _) = write_all(config, &rows);
        let files = files(&runtime, &store);
        let rows_written: usize = files.iter().map(|(_, rows, _)| rows).sum();
        assert_eq!(rows_written, rows.len());
        for (folder, rows, groups) in files {
            assert_eq!(groups, 1, "{folder}: {rows} rows");
        }
    }

    #[test]
    fn past_the_open_file_limit_the_least_recently_written_is_finished() {
        let rows = over_plants(&synthetic_windows(20, 3_000, 7), 10);
        let config = ParquetSinkConfig {
            max_open_files: 3,
            ..ParquetSinkConfig::default()
        };
        let (runtime, store, stats) = write_all(config, &rows);
        let files = files(&runtime, &store);
        assert!(stats.files as usize > 10, "{} files", stats.files);
        let rows_written: usize = files.iter().map(|(_, rows, _)| rows).sum();
        assert_eq!(rows_written, rows.len());
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
