//! The hive-partitioned Parquet datasets of SPEC §5:
//! `<root>/<dataset>/plant=<code>/date=<UTC date>/part-<n>.parquet`. Rows are buffered per
//! partition and written as whole files with one `put` each: the object store makes a put
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
    /// A partition's buffer is written as a file once it holds this many rows.
    pub rows_per_file: usize,
    /// Above this many buffered rows in all, the largest buffer is written early.
    pub max_buffered_rows: usize,
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        ParquetSinkConfig {
            rows_per_file: 65_536,
            max_buffered_rows: 131_072,
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

pub struct DatasetWriter<R: DatasetRow> {
    store: Arc<dyn ObjectStore>,
    root: Path,
    runtime: tokio::runtime::Handle,
    config: ParquetSinkConfig,
    buffers: BTreeMap<(String, i32), Vec<R>>,
    buffered: usize,
    next_file: u64,
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
            buffers: BTreeMap::new(),
            buffered: 0,
            next_file: 0,
            stats: SinkStats::default(),
        }
    }

    pub fn write(&mut self, rows: impl IntoIterator<Item = R>) -> anyhow::Result<()> {
        for row in rows {
            let key = (row.plant().to_string(), row.day());
            let buffer = self.buffers.entry(key.clone()).or_default();
            buffer.push(row);
            self.buffered += 1;
            if buffer.len() >= self.config.rows_per_file {
                self.flush(&key)?;
            }
        }
        while self.buffered > self.config.max_buffered_rows {
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, v)| v.len())
                .map(|(k, _)| k.clone());
            match largest {
                Some(key) => self.flush(&key)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Writes every buffered row.
    pub fn close(mut self) -> anyhow::Result<SinkStats> {
        let keys: Vec<_> = self.buffers.keys().cloned().collect();
        for key in keys {
            self.flush(&key)?;
        }
        Ok(self.stats)
    }

    fn flush(&mut self, key: &(String, i32)) -> anyhow::Result<()> {
        let Some(rows) = self.buffers.remove(key).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        self.buffered -= rows.len();
        let bytes = encode(&R::batch(&rows))?;
        let path = partition_path(&self.root, R::DATASET, &key.0, key.1, self.next_file);
        self.next_file += 1;
        self.stats.rows += rows.len() as u64;
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

/// A batch as a Parquet file in memory: Snappy, page statistics, one row group.
pub fn encode(batch: &RecordBatch) -> anyhow::Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(batch.num_rows().max(1)))
        .build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}
