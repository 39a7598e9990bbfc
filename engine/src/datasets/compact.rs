//! Compaction: each `plant=/date=` partition's files become few large ones holding only
//! the latest revision of each row — what `station_windows_latest` shows, unchanged.
//!
//! The swap is "put the merged files, then delete the files they replace", and only the
//! files read are deleted, so rows a writer adds meanwhile stay. Between the put and the
//! deletes a reader sees both; every latest view and roll-up gives the same answer then
//! (the merged file holds copies of the latest revisions, never anything new). A crash
//! in between leaves both, and the next compaction merges them again. Merged files are
//! named `c-<digest of the replaced names>-<n>.parquet`, so a retried put replaces its
//! file.

use std::collections::HashMap;

use super::{
    decode, encode, partitions, put, read_bytes, remove, sha256_hex, Dataset, Partition, RowKeys,
};
use crate::error::{Context as _, Result};
use crate::sinks::parquet::partition_path;
use crate::store::{commits, Root};
use arrow::array::{Array, RecordBatch};

/// What compaction did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub dataset: &'static str,
    pub plant: String,
    pub date: String,
    pub files_before: usize,
    pub files_after: usize,
    pub rows_before: usize,
    pub rows_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts every partition dated before `before` (`YYYY-MM-DD`; `None`: all) that has
/// more than one file, or one file not yet compacted.
pub async fn compact(
    root: &Root,
    before: Option<&str>,
    rows_per_file: usize,
) -> Result<Vec<Compacted>> {
    let mut done = Vec::new();
    // Live files of epochs not yet committed may still be taken back by a restore.
    let commits = commits::load(&*root.store, &root.prefix).await?;
    for dataset in Dataset::ALL {
        for mut partition in partitions(root, dataset).await? {
            partition
                .files
                .retain(|m| commits::is_committed(&commits, &m.location));
            if partition.files.is_empty() {
                continue;
            }
            if before.is_some_and(|b| partition.date.as_str() >= b) || is_compacted(&partition) {
                continue;
            }
            done.push(compact_partition(root, dataset, &partition, rows_per_file).await?);
        }
    }
    Ok(done)
}

fn is_compacted(partition: &Partition) -> bool {
    partition.files.len() == 1
        && partition.files[0]
            .location
            .filename()
            .is_some_and(|n| n.starts_with("c-"))
}

async fn compact_partition(
    root: &Root,
    dataset: Dataset,
    partition: &Partition,
    rows_per_file: usize,
) -> Result<Compacted> {
    let mut batches = Vec::new();
    for meta in &partition.files {
        let bytes = read_bytes(&*root.store, &meta.location).await?;
        batches.extend(decode(&meta.location, bytes)?);
    }
    let rows_before = batches.iter().map(RecordBatch::num_rows).sum();
    let latest = latest_rows(&batches, dataset)?;
    let digest = sha256_hex(
        partition
            .files
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes(),
    );
    let day = date32(&partition.date)?;
    let mut written = Vec::new();
    let mut bytes_after = 0;
    for (n, chunk) in latest.chunks(rows_per_file.max(1)).enumerate() {
        let batch = take_rows(&batches, chunk)?;
        let bytes = encode(&[batch])?;
        bytes_after += bytes.len() as u64;
        let name = format!("c-{}-{n:04}.parquet", &digest[..16]);
        let path = partition_path(&root.prefix, dataset.name(), &partition.plant, day, &name);
        put(&*root.store, &path, bytes).await?;
        written.push(path);
    }
    for meta in &partition.files {
        if !written.contains(&meta.location) {
            remove(&*root.store, &meta.location).await?;
        }
    }
    Ok(Compacted {
        dataset: dataset.name(),
        plant: partition.plant.clone(),
        date: partition.date.clone(),
        files_before: partition.files.len(),
        files_after: written.len(),
        rows_before,
        rows_after: latest.len(),
        bytes_before: partition.files.iter().map(|m| m.size).sum(),
        bytes_after,
    })
}

/// `(batch, row)` of the highest revision of each `(station, time)`, in station then
/// time order. Copies of one revision (a row written twice) count once.
fn latest_rows(batches: &[RecordBatch], dataset: Dataset) -> Result<Vec<(usize, usize)>> {
    let mut best: HashMap<(&str, i64), (i32, usize, usize)> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let keys = RowKeys::of(batch, dataset)?;
        for r in 0..batch.num_rows() {
            let key = (keys.station(r), keys.time.value(r));
            let revision = keys.revision.value(r);
            match best.get(&key) {
                Some((kept, _, _)) if *kept >= revision => {}
                _ => {
                    best.insert(key, (revision, b, r));
                }
            }
        }
    }
    let mut rows: Vec<(&str, i64, usize, usize)> = best
        .into_iter()
        .map(|((station, time), (_, b, r))| (station, time, b, r))
        .collect();
    rows.sort_unstable();
    Ok(rows.into_iter().map(|(_, _, b, r)| (b, r)).collect())
}

/// The rows at `at`, gathered into one batch.
pub fn take_rows(batches: &[RecordBatch], at: &[(usize, usize)]) -> Result<RecordBatch> {
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, at)
        })
        .collect::<Result<Vec<_>, _>>()
        .context("files of one partition differ in their columns")?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

pub(crate) fn date32(date: &str) -> Result<i32> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .with_context(|| format!("partition date={date}"))?;
    Ok((day - chrono::NaiveDate::default()).num_days() as i32)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use stationflow_schemas::window::StationWindow;

    use super::*;
    use crate::sinks::parquet::ParquetSinkConfig;

    fn windows() -> Vec<StationWindow> {
        crate::sinks::parquet::tests::synthetic_windows(3, 3_000, 7)
    }

    #[test]
    fn keeps_the_latest_revision_of_each_window_in_one_file_per_partition() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let root = Root {
            store: Arc::new(InMemory::new()),
            prefix: Path::from("out"),
            url: "memory:///out/".into(),
            local: None,
        };
        let first = windows();
        // A second write of every window as revision 1 and 2 (2 with other figures), in
        // small files, as a live engine's epochs would leave them.
        let mut later = first.clone();
        for w in &mut later {
            w.revision = 1;
        }
        let mut latest = first.clone();
        for w in &mut latest {
            w.revision = 2;
            w.good_qty += 1.0;
        }
        let config = ParquetSinkConfig {
            rows_per_file: 10,
            ..ParquetSinkConfig::default()
        };
        let mut writer = config.build::<StationWindow>(&root, runtime.handle());
        writer.write(first.clone()).unwrap();
        writer.write(latest.clone()).unwrap();
        writer.write(later).unwrap();
        writer.write(first.clone()).unwrap(); // a copy of revision 0, as after a crash
        writer.close().unwrap();

        let done = runtime.block_on(compact(&root, None, 100_000)).unwrap();
        assert!(done.iter().any(|c| c.files_before > 1), "{done:?}");
        for c in &done {
            assert_eq!(c.files_after, 1, "{c:?}");
            assert_eq!(c.rows_before, c.rows_after * 4, "{c:?}");
        }
        let parts = runtime
            .block_on(partitions(&root, Dataset::StationWindows))
            .unwrap();
        let mut rows = Vec::new();
        for p in &parts {
            assert_eq!(p.files.len(), 1);
            let bytes = runtime
                .block_on(read_bytes(&*root.store, &p.files[0].location))
                .unwrap();
            rows.extend(decode(&p.files[0].location, bytes).unwrap());
        }
        let total: usize = rows.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(total, latest.len());
        for batch in &rows {
            let keys = RowKeys::of(batch, Dataset::StationWindows).unwrap();
            assert!((0..batch.num_rows()).all(|i| keys.revision.value(i) == 2));
        }
        // Nothing left to do: a second run changes nothing.
        assert!(runtime
            .block_on(compact(&root, None, 100_000))
            .unwrap()
            .is_empty());
    }
}
