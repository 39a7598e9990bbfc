//! Work on the datasets as they lie in the store, file by file: compaction and secure
//! deletion. A file is read whole (files hold at most a sink's `rows_per_file` rows) and
//! replaced with one `put`, so each object changes atomically.

pub mod compact;
pub mod delete;
pub mod sums;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampMillisecondType};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::error::{format_err, Context as _, Error, Result};
use crate::sinks::parquet::writer_properties;
use crate::store::{list_all, Root};

/// The two datasets of SPEC §5, with the columns that identify a row's versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    StationWindows,
    DowntimeEvents,
}

impl Dataset {
    pub const ALL: [Dataset; 2] = [Dataset::StationWindows, Dataset::DowntimeEvents];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::StationWindows => "station_windows",
            Dataset::DowntimeEvents => "downtime_events",
        }
    }

    /// The timestamp that, with the station, names a row; revisions share it. Its UTC
    /// day is the row's `date=` partition.
    pub fn time_column(self) -> &'static str {
        match self {
            Dataset::StationWindows => "window_start",
            Dataset::DowntimeEvents => "start",
        }
    }
}

/// One `plant=/date=` folder of a dataset and its files.
#[derive(Debug, Clone)]
pub struct Partition {
    pub plant: String,
    /// `YYYY-MM-DD`, as in the folder name.
    pub date: String,
    pub files: Vec<ObjectMeta>,
}

/// The dataset's partitions, by plant then date, files sorted by name.
pub async fn partitions(root: &Root, dataset: Dataset) -> Result<Vec<Partition>> {
    partitions_of(root, dataset.name()).await
}

/// The partitions of the hive-partitioned dataset `name`, by plant then date.
pub async fn partitions_of(root: &Root, name: &str) -> Result<Vec<Partition>> {
    let prefix = root.child(name);
    let objects = list_all(&*root.store, &prefix).await?;
    let mut by_folder: BTreeMap<(String, String), Vec<ObjectMeta>> = BTreeMap::new();
    for meta in objects {
        let parts: Vec<String> = meta
            .location
            .prefix_match(&prefix)
            .map(|p| p.map(|part| part.as_ref().to_string()).collect())
            .unwrap_or_default();
        let [plant, date, file] = parts.as_slice() else {
            continue;
        };
        let (Some(plant), Some(date)) = (plant.strip_prefix("plant="), date.strip_prefix("date="))
        else {
            continue;
        };
        if file.ends_with(".parquet") {
            // Folder names are percent-encoded (`Leeds Site #2` is `Leeds Site %232`):
            // decoded here, so that the partition is the plant's, and is encoded once again
            // when a path is made from it.
            let plant = percent_decode_str(plant).decode_utf8_lossy();
            by_folder
                .entry((plant.into_owned(), date.to_string()))
                .or_default()
                .push(meta);
        }
    }
    Ok(by_folder
        .into_iter()
        .map(|((plant, date), mut files)| {
            files.sort_by(|a, b| a.location.cmp(&b.location));
            Partition { plant, date, files }
        })
        .collect())
}

/// `read_bytes`, or `None` when the object is gone (another writer removed it).
pub async fn read_bytes_if_there(store: &dyn ObjectStore, path: &Path) -> Result<Option<Bytes>> {
    match store.get(path).await {
        Ok(got) => Ok(Some(
            (got.bytes().await).with_context(|| format!("reading {path}"))?,
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("reading {path}"))),
    }
}

/// An object's bytes, read whole.
pub async fn read_bytes(store: &dyn ObjectStore, path: &Path) -> Result<Bytes> {
    let got = store
        .get(path)
        .await
        .with_context(|| format!("reading {path}"))?;
    got.bytes().await.with_context(|| format!("reading {path}"))
}

/// A Parquet file's rows.
pub fn decode(path: &Path, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    decode_with(path, bytes, |_| Ok(ProjectionMask::all()))
}

/// A Parquet file's rows, the named columns only.
pub fn decode_columns(path: &Path, bytes: Bytes, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    decode_with(path, bytes, |builder| {
        let indices = columns
            .iter()
            .map(|c| {
                builder
                    .schema()
                    .index_of(c)
                    .map_err(|_| format_err!("{path} has no `{c}` column"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ProjectionMask::roots(builder.parquet_schema(), indices))
    })
}

fn decode_with(
    path: &Path,
    bytes: Bytes,
    projection: impl FnOnce(&ParquetRecordBatchReaderBuilder<Bytes>) -> Result<ProjectionMask>,
) -> Result<Vec<RecordBatch>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("{path} is not a readable Parquet file"))?;
    let mask = projection(&builder)?;
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()
        .with_context(|| format!("{path} is not a readable Parquet file"))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("decoding {path}"))
}

/// Rows as one Parquet file, written as the sinks write theirs.
pub fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| Error::internal("no rows to encode"))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(writer_properties(rows)))?;
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(writer.into_inner()?)
}

pub async fn put(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> Result<()> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}

/// Removes `path`; one already gone (another writer removed it) is removed too.
pub async fn remove(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::from(e).context(format!("removing {path}"))),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The columns every maintenance step reads from a row.
pub struct RowKeys<'a> {
    pub station: &'a arrow::array::StringArray,
    pub time: &'a arrow::array::PrimitiveArray<TimestampMillisecondType>,
    pub revision: &'a arrow::array::PrimitiveArray<Int32Type>,
}

impl<'a> RowKeys<'a> {
    pub fn of(batch: &'a RecordBatch, dataset: Dataset) -> Result<RowKeys<'a>> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format_err!("a {} file has no `{name}` column", dataset.name()))
        };
        let station = column("station")?;
        let time = column(dataset.time_column())?;
        let revision = column("revision")?;
        Ok(RowKeys {
            station: station
                .as_string_opt::<i32>()
                .ok_or_else(|| format_err!("`station` is not Utf8"))?,
            time: time
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| {
                    format_err!("`{}` is not a millisecond timestamp", dataset.time_column())
                })?,
            revision: revision
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| format_err!("`revision` is not Int32"))?,
        })
    }

    pub fn station(&self, i: usize) -> &'a str {
        if self.station.is_null(i) {
            ""
        } else {
            self.station.value(i)
        }
    }
}
