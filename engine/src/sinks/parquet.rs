//! The hive-partitioned Parquet datasets of SPEC §5:
//! `<root>/<dataset>/plant=<code>/date=<UTC date>/part-<n>.parquet`. Each partition's file
//! is encoded as rows arrive and written whole with one `put`: the object store makes a put
//! atomic (a local folder writes a temporary file and renames it), so a reader sees a file
//! complete or not at all. Names are numbered per run, so a file is never overwritten by
//! another of the same run.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use stationflow_schemas::window::{format_date32, DowntimeEvent, StationWindow};

use super::arrow_rows;

/// A row of a dataset: which partition it belongs to and how rows become a batch.
pub trait DatasetRow: Sized {
    const DATASET: &'static str;
    fn plant(&self) -> &str;
    /// The UTC day (days since 1970-01-01) of the row's partition.
    fn day(&self) -> i32;
    fn batch(rows: &[Self]) -> RecordBatch;
}

fn utc_day(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(86_400_000) as i32
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

/// A partition's file being written: rows are encoded in chunks as they come, so memory
/// holds compressed pages, not rows.
struct OpenFile<R> {
    writer: ArrowWriter<Vec<u8>>,
    rows: usize,
    pending: Vec<R>,
    last_write: u64,
}

pub struct DatasetWriter<R: DatasetRow> {
    store: Arc<dyn ObjectStore>,
    root: Path,
    runtime: tokio::runtime::Handle,
    config: ParquetSinkConfig,
    open: BTreeMap<(String, i32), OpenFile<R>>,
    next_file: u64,
    writes: u64,
    pub stats: SinkStats,
}

impl<R: DatasetRow> DatasetWriter<R> {
    pub fn new(
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
            next_file: 0,
            writes: 0,
            stats: SinkStats::default(),
        }
    }

    pub fn write(&mut self, rows: impl IntoIterator<Item = R>) -> anyhow::Result<()> {
        for row in rows {
            let key = (row.plant().to_string(), row.day());
            if !self.open.contains_key(&key) {
                self.make_room()?;
                let writer = ArrowWriter::try_new(
                    Vec::new(),
                    R::batch(&[]).schema(),
                    Some(writer_properties(self.config.rows_per_file)),
                )?;
                self.open.insert(
                    key.clone(),
                    OpenFile {
                        writer,
                        rows: 0,
                        pending: Vec::new(),
                        last_write: 0,
                    },
                );
            }
            self.writes += 1;
            let file = self.open.get_mut(&key).expect("opened above");
            file.last_write = self.writes;
            file.pending.push(row);
            file.rows += 1;
            if file.pending.len() >= self.config.chunk_rows {
                let batch = R::batch(&std::mem::take(&mut file.pending));
                file.writer.write(&batch)?;
            }
            if file.rows >= self.config.rows_per_file {
                self.finish(&key)?;
            }
        }
        Ok(())
    }

    fn make_room(&mut self) -> anyhow::Result<()> {
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
    pub fn close(mut self) -> anyhow::Result<SinkStats> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for key in keys {
            self.finish(&key)?;
        }
        Ok(self.stats)
    }

    fn finish(&mut self, key: &(String, i32)) -> anyhow::Result<()> {
        let Some(mut file) = self.open.remove(key) else {
            return Ok(());
        };
        if !file.pending.is_empty() {
            file.writer.write(&R::batch(&file.pending))?;
        }
        let bytes = file.writer.into_inner()?;
        let path = partition_path(&self.root, R::DATASET, &key.0, key.1, self.next_file);
        self.next_file += 1;
        self.stats.rows += file.rows as u64;
        self.stats.files += 1;
        self.stats.bytes += bytes.len() as u64;
        let store = self.store.clone();
        self.runtime
            .block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map_err(|e| anyhow::anyhow!("writing {} output: {e}", R::DATASET))?;
        Ok(())
    }
}

/// `<root>/<dataset>/plant=<plant>/date=<YYYY-MM-DD>/part-<n>.parquet`.
pub fn partition_path(root: &Path, dataset: &str, plant: &str, day: i32, n: u64) -> Path {
    let parts = [
        PathPart::from(dataset),
        PathPart::from(format!("plant={plant}")),
        PathPart::from(format!("date={}", format_date32(day))),
        PathPart::from(format!("part-{n:06}.parquet")),
    ];
    root.parts().chain(parts).collect()
}

/// Snappy, page statistics, row groups of up to `rows` rows.
pub fn writer_properties(rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(rows.max(1)))
        .build()
}
