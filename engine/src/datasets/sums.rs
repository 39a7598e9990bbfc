//! The `window_sums` dataset: for each UTC day of `station_windows`, the sums of its
//! latest windows by plant, line, station, SKU, shift and production day — what every
//! `oee_by_*` view adds up, so a roll-up reads a few thousand rows instead of every window.
//!
//! A day's sums are computed from all of that day's window files (every plant: a
//! revision may move a station's window to another plant) and named
//! `s-<digest>-<class>.parquet`, where the digest covers the names, sizes and entity tags
//! of the files they were computed from. A reader takes a day's sums only while the
//! digest matches the files there now (`Freshness`); any other day is computed from its
//! windows at query time, so sums that lag (a live epoch, a compaction, a deletion since)
//! never change an answer, they only make it slower. The class tells readers how the
//! day's windows de-duplicate: `clean` (no row superseded: read as they are), `revised`
//! (only lower revisions superseded: an anti-join on the few revisions), `copies` (some
//! revision written twice: `ROW_NUMBER`), `moved` (a window in two plants: `ROW_NUMBER`
//! across plants). In all but `moved` a window's rows are in one plant, so readers may
//! de-duplicate within a plant, and a filter on the plant reads that plant's files only.
//! Days of `downtime_events` are classified the same way; having no sums, their class
//! is an empty object `_classes/downtime_events/date=<day>/<digest>-<class>`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectMeta;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{
    decode_columns, encode, partitions_of, put, read_bytes_if_there, remove, sha256_hex, Dataset,
    RowKeys,
};
use crate::error::{format_err, Context as _, Result};
use crate::sinks::parquet::partition_path;
use crate::store::{commits, list_all, Root};

/// The dataset's name under the root.
pub const SUMS: &str = "window_sums";

/// Where other datasets' day classes are kept, under the root.
pub const CLASSES: &str = "_classes";

/// The columns a day's sums are grouped by, besides the plant.
pub const GRAIN: [&str; 6] = [
    "line",
    "station",
    "sku",
    "shift_date",
    "shift",
    "production_date",
];

/// Window columns summed as they are (all `Float64`).
pub const SUMMED: [&str; 23] = [
    "shift_s",
    "planned_s",
    "planned_stop_s",
    "schedule_loss_s",
    "productive_s",
    "run_s",
    "downtime_s",
    "no_data_s",
    "good_qty",
    "reject_qty",
    "total_qty",
    "ideal_qty",
    "target_qty",
    "availability_loss_s",
    "performance_loss_s",
    "quality_loss_s",
    "availability_loss_cost",
    "performance_loss_cost",
    "quality_loss_cost",
    "loss_cost",
    "schedule_loss_cost",
    "planned_stop_cost",
    "energy_kwh",
];

/// Sums of one column over the windows where another is present: performance and OEE
/// count output only where there is a target or an ideal to compare it with.
pub const CONDITIONAL: [(&str, &str, &str); 2] = [
    ("total_qty_with_target", "total_qty", "target_qty"),
    ("good_qty_with_ideal", "good_qty", "ideal_qty"),
];

/// How a day's windows de-duplicate to the latest revision of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayClass {
    /// Every row is the latest of its window.
    Clean,
    /// Some rows are superseded by a higher revision; no revision is there twice.
    Revised,
    /// Some revision of a window is there more than once (a writer's retry).
    Copies,
    /// Some window has rows in two plants (a context correction moved its station):
    /// only a de-duplication across plants is right.
    Moved,
}

impl DayClass {
    fn tag(self) -> &'static str {
        match self {
            DayClass::Clean => "clean",
            DayClass::Revised => "revised",
            DayClass::Copies => "copies",
            DayClass::Moved => "moved",
        }
    }

    fn parse(tag: &str) -> Option<DayClass> {
        [
            DayClass::Clean,
            DayClass::Revised,
            DayClass::Copies,
            DayClass::Moved,
        ]
        .into_iter()
        .find(|c| c.tag() == tag)
    }
}

/// The `window_sums` file schema (`plant` is also the partition's).
pub fn sums_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let mut fields = vec![
        text("plant", false),
        text("line", true),
        text("station", false),
        text("sku", true),
        Field::new("shift_date", DataType::Date32, true),
        text("shift", true),
        Field::new("production_date", DataType::Date32, false),
        Field::new("windows", DataType::Int64, false),
    ];
    fields.extend(
        SUMMED
            .iter()
            .chain(CONDITIONAL.iter().map(|(name, _, _)| name))
            .map(|c| Field::new(*c, DataType::Float64, true)),
    );
    fields.push(Field::new("event_count", DataType::Int64, false));
    fields.push(text("currency", true));
    Arc::new(Schema::new(fields))
}

/// One UTC day of `station_windows` as listed now.
#[derive(Debug, Clone)]
pub struct Day {
    pub date: String,
    /// `(plant, file)`, committed files only, by path.
    pub files: Vec<(String, ObjectMeta)>,
    pub digest: String,
    /// The day's sums files, fresh or not.
    pub sums: Vec<ObjectMeta>,
    /// Set when every plant of the day has sums computed from exactly `files`.
    pub class: Option<DayClass>,
}

/// Which days have sums that match their windows, and which days of downtime events
/// have a class that matches their files, as the store holds them now.
#[derive(Debug, Default)]
pub struct Freshness {
    pub days: BTreeMap<String, Day>,
    fresh_sums: HashSet<Path>,
    /// Sums files of days that have no windows any more.
    orphans: Vec<ObjectMeta>,
    /// Days of `downtime_events`; `Day::sums` holds their class markers.
    pub event_days: BTreeMap<String, Day>,
    /// Markers of days that have no events any more.
    event_orphans: Vec<ObjectMeta>,
}

impl Freshness {
    /// Lists `station_windows` and `downtime_events` (committed files), `window_sums`
    /// and the events' class markers under `root`.
    pub async fn load(root: &Root, committed: &BTreeMap<i32, u64>) -> Result<Freshness> {
        let mut days = days_of(root, Dataset::StationWindows, committed).await?;
        let mut orphans = Vec::new();
        let mut sums_by_day: BTreeMap<String, Vec<(String, ObjectMeta)>> = BTreeMap::new();
        for partition in partitions_of(root, SUMS).await? {
            for meta in partition.files {
                if days.contains_key(&partition.date) {
                    sums_by_day
                        .entry(partition.date.clone())
                        .or_default()
                        .push((partition.plant.clone(), meta));
                } else {
                    orphans.push(meta);
                }
            }
        }
        let mut fresh_sums = HashSet::new();
        for day in days.values_mut() {
            let sums = sums_by_day.remove(&day.date).unwrap_or_default();
            day.class = class_of(day, &sums);
            if day.class.is_some() {
                let matching = sums
                    .iter()
                    .filter(|(_, m)| name_digest(m).is_some_and(|(d, _)| d == day.digest));
                fresh_sums.extend(matching.map(|(_, m)| m.location.clone()));
            }
            day.sums = sums.into_iter().map(|(_, m)| m).collect();
        }
        let mut event_days = days_of(root, Dataset::DowntimeEvents, committed).await?;
        let mut event_orphans = Vec::new();
        for (date, meta) in markers(root).await? {
            match event_days.get_mut(&date) {
                Some(day) => day.sums.push(meta),
                None => event_orphans.push(meta),
            }
        }
        for day in event_days.values_mut() {
            day.class = day
                .sums
                .iter()
                .filter_map(marker_class)
                .find_map(|(d, class)| (d == day.digest).then_some(class));
        }
        Ok(Freshness {
            days,
            fresh_sums,
            orphans,
            event_days,
            event_orphans,
        })
    }

    /// The class of day `date` when its sums are fresh.
    pub fn class(&self, date: &str) -> Option<DayClass> {
        self.days.get(date).and_then(|d| d.class)
    }

    /// The class of day `date` of downtime events when its marker matches its files.
    pub fn event_class(&self, date: &str) -> Option<DayClass> {
        self.event_days.get(date).and_then(|d| d.class)
    }

    pub fn is_fresh(&self, sums_file: &Path) -> bool {
        self.fresh_sums.contains(sums_file)
    }
}

/// The committed files of `dataset`, by UTC day, with each day's digest.
async fn days_of(
    root: &Root,
    dataset: Dataset,
    committed: &BTreeMap<i32, u64>,
) -> Result<BTreeMap<String, Day>> {
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    for partition in partitions_of(root, dataset.name()).await? {
        for meta in partition.files {
            if commits::is_committed(committed, &meta.location) {
                days.entry(partition.date.clone())
                    .or_insert_with(|| Day {
                        date: partition.date.clone(),
                        files: Vec::new(),
                        digest: String::new(),
                        sums: Vec::new(),
                        class: None,
                    })
                    .files
                    .push((partition.plant.clone(), meta));
            }
        }
    }
    for day in days.values_mut() {
        day.files.sort_by(|a, b| a.1.location.cmp(&b.1.location));
        day.digest = digest(&day.files);
    }
    Ok(days)
}

/// Where the class markers of downtime events' days are:
/// `<root>/_classes/downtime_events/date=<day>/<digest>-<class>` (empty objects).
fn markers_prefix(root: &Root) -> Path {
    root.child(CLASSES).join(Dataset::DowntimeEvents.name())
}

/// `(date, marker)` of every class marker.
async fn markers(root: &Root) -> Result<Vec<(String, ObjectMeta)>> {
    let prefix = markers_prefix(root);
    let listed = list_all(&*root.store, &prefix).await?;
    Ok(listed
        .into_iter()
        .filter_map(|m| {
            let date = m.location.prefix_match(&prefix)?.next()?;
            let date = date.as_ref().strip_prefix("date=")?.to_string();
            Some((date, m))
        })
        .collect())
}

/// `(digest, class)` from a marker's name, `<digest>-<class>`.
fn marker_class(meta: &ObjectMeta) -> Option<(&str, DayClass)> {
    digest_and_class(meta.location.filename()?)
}

fn digest_and_class(text: &str) -> Option<(&str, DayClass)> {
    let (digest, class) = text.split_once('-')?;
    Some((digest, DayClass::parse(class)?))
}

/// The digest of a day's files: names, sizes and entity tags (the modification time
/// where a store has none), so a file rewritten under its name changes it.
fn digest(files: &[(String, ObjectMeta)]) -> String {
    let mut text = String::new();
    for (_, m) in files {
        let tag = m
            .e_tag
            .clone()
            .unwrap_or_else(|| m.last_modified.to_rfc3339());
        text.push_str(&format!("{}\t{}\t{tag}\n", m.location, m.size));
    }
    sha256_hex(text.as_bytes())[..16].to_string()
}

/// `(digest, class)` from a sums file's name, `s-<digest>-<class>.parquet`.
fn name_digest(meta: &ObjectMeta) -> Option<(&str, DayClass)> {
    let name = meta.location.filename()?;
    digest_and_class(name.strip_prefix("s-")?.strip_suffix(".parquet")?)
}

/// The day's class when every plant with windows has sums of exactly these files.
fn class_of(day: &Day, sums: &[(String, ObjectMeta)]) -> Option<DayClass> {
    let plants: BTreeSet<&str> = day.files.iter().map(|(p, _)| p.as_str()).collect();
    let mut class = None;
    for plant in plants {
        let (_, c) = sums
            .iter()
            .filter(|(p, _)| p == plant)
            .find_map(|(_, m)| name_digest(m).filter(|(d, _)| *d == day.digest))?;
        if class.is_some_and(|k| k != c) {
            return None;
        }
        class = Some(c);
    }
    class
}

/// What refreshing one day did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub date: String,
    pub class: DayClass,
    pub windows: usize,
    pub rows: usize,
}

/// Computes the sums of every day whose sums are missing or stale, classifies every
/// day of events whose class is, and removes sums and markers of days that have no
/// rows any more.
pub async fn refresh(root: &Root) -> Result<Vec<Refreshed>> {
    refresh_days_at_once(root, 1).await
}

/// `refresh`, summing up to `days` days at once, each on a blocking thread of its own.
/// Each day in progress holds its files and keys in memory.
pub async fn refresh_days_at_once(root: &Root, days: usize) -> Result<Vec<Refreshed>> {
    let committed = commits::load(&*root.store, &root.prefix).await?;
    let freshness = Freshness::load(root, &committed).await?;
    for day in freshness.days.values().filter(|d| d.class.is_some()) {
        // Fresh, but a writer that raced this one may have left sums of older files.
        let current = |m: &ObjectMeta| name_digest(m).is_some_and(|(d, _)| d == day.digest);
        remove_all_but(root, &day.sums, current).await?;
    }
    let stale = freshness.days.values().filter(|d| d.class.is_none());
    let done: Vec<Option<Refreshed>> =
        futures::stream::iter(stale.map(|day| refresh_day(root, day)))
            .buffered(days.max(1))
            .try_collect()
            .await?;
    let done: Vec<Refreshed> = done.into_iter().flatten().collect();
    for day in freshness.event_days.values() {
        if day.class.is_none() {
            classify_event_day(root, day).await?;
        }
        let current = |m: &ObjectMeta| marker_class(m).is_some_and(|(d, _)| d == day.digest);
        remove_all_but(root, &day.sums, current).await?;
    }
    let orphans = freshness.orphans.iter().chain(&freshness.event_orphans);
    remove_all_but(root, orphans, |_| false).await?;
    Ok(done)
}

/// Removes the objects `keep` does not hold to.
async fn remove_all_but<'a>(
    root: &Root,
    objects: impl IntoIterator<Item = &'a ObjectMeta>,
    keep: impl Fn(&ObjectMeta) -> bool,
) -> Result<()> {
    for meta in objects {
        if !keep(meta) {
            remove(&*root.store, &meta.location).await?;
        }
    }
    Ok(())
}

/// One of a day's files, read whole: its plant, path and bytes.
type DayFile = (String, Path, Bytes);

/// The day's files; `None` when one is gone (a writer racing this one replaced it): the
/// day's sums are then left for the next refresh.
async fn read_day(root: &Root, day: &Day) -> Result<Option<Vec<DayFile>>> {
    let mut files = Vec::with_capacity(day.files.len());
    for (plant, meta) in &day.files {
        let Some(bytes) = read_bytes_if_there(&*root.store, &meta.location).await? else {
            return Ok(None);
        };
        files.push((plant.clone(), meta.location.clone(), bytes));
    }
    Ok(Some(files))
}

/// Computes one day's sums from its files (on a blocking thread), puts one file per
/// plant, then removes the day's other sums files.
async fn refresh_day(root: &Root, day: &Day) -> Result<Option<Refreshed>> {
    let Some(files) = read_day(root, day).await? else {
        return Ok(None);
    };
    let (sums, class, windows) = tokio::task::spawn_blocking(move || sum_day(&files)).await??;
    let day_number = super::compact::date32(&day.date)?;
    let mut written = Vec::new();
    let mut rows = 0;
    for (plant, batch) in sums {
        rows += batch.num_rows();
        let name = format!("s-{}-{}.parquet", day.digest, class.tag());
        let path = partition_path(&root.prefix, SUMS, &plant, day_number, &name);
        put(&*root.store, &path, encode(&[batch])?).await?;
        written.push(path);
    }
    remove_all_but(root, &day.sums, |m| written.contains(&m.location)).await?;
    Ok(Some(Refreshed {
        date: day.date.clone(),
        class,
        windows,
        rows,
    }))
}

/// A day's sums by plant, its class and how many latest windows it has.
type DaySums = (Vec<(String, RecordBatch)>, DayClass, usize);

/// Sums a day's latest windows by plant.
fn sum_day(files: &[DayFile]) -> Result<DaySums> {
    let (kept, class) = latest_of_day(files, Dataset::StationWindows)?;
    let mut by_plant: BTreeMap<&str, Accumulator> = BTreeMap::new();
    let mut windows = 0;
    for ((plant, path, bytes), kept) in files.iter().zip(&kept) {
        windows += kept.iter().filter(|k| **k).count();
        let acc = by_plant.entry(plant.as_str()).or_default();
        let mut offset = 0;
        for batch in decode_columns(path, bytes.clone(), &sums_inputs())? {
            let rows = offset..offset + batch.num_rows();
            acc.add(&batch, kept.get(rows).unwrap_or_default())?;
            offset += batch.num_rows();
        }
    }
    let sums = (by_plant.into_iter())
        .map(|(plant, acc)| Ok((plant.to_string(), acc.finish(plant)?)))
        .collect::<Result<_>>()?;
    Ok((sums, class, windows))
}

/// Classifies one day of downtime events and puts its marker.
async fn classify_event_day(root: &Root, day: &Day) -> Result<()> {
    let Some(files) = read_day(root, day).await? else {
        return Ok(());
    };
    let (_, class) = latest_of_day(&files, Dataset::DowntimeEvents)?;
    let marker = markers_prefix(root)
        .join(format!("date={}", day.date))
        .join(format!("{}-{}", day.digest, class.tag()));
    put(&*root.store, &marker, Vec::new()).await
}

/// The window columns the sums read.
fn sums_inputs() -> Vec<&'static str> {
    let mut columns: Vec<&str> = GRAIN.to_vec();
    columns.extend(SUMMED);
    columns.extend(["event_count", "currency"]);
    columns
}

/// Keys one pass of `latest_of_day` holds at most (about 40 bytes each): a day with
/// more rows is read in passes, its stations split between them by a hash.
const KEYS_PER_PASS: usize = 4_000_000;

/// For each file, which of its rows are the latest revision of their key (one copy
/// kept where a revision is there twice), and the day's class.
fn latest_of_day(files: &[DayFile], dataset: Dataset) -> Result<(Vec<Vec<bool>>, DayClass)> {
    latest_in_passes(files, dataset, KEYS_PER_PASS)
}

/// The pass (of `passes`) that handles `station`'s keys.
fn pass_of(station: &str, passes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    station.hash(&mut hasher);
    (hasher.finish() % passes as u64) as usize
}

fn latest_in_passes(
    files: &[DayFile],
    dataset: Dataset,
    keys_per_pass: usize,
) -> Result<(Vec<Vec<bool>>, DayClass)> {
    let rows = files
        .iter()
        .map(|(_, path, bytes)| {
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
                .with_context(|| format!("{path} is not a readable Parquet file"))?;
            Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
        })
        .collect::<Result<Vec<usize>>>()?;
    let passes = rows
        .iter()
        .sum::<usize>()
        .div_ceil(keys_per_pass.max(1))
        .max(1);
    let mut kept: Vec<Vec<bool>> = rows.iter().map(|n| vec![false; *n]).collect();
    let (mut copies, mut superseded, mut moved) = (false, false, false);
    let keys = ["station", dataset.time_column(), "revision"];
    for pass in 0..passes {
        // Stations by number, so that a key is small and owns nothing.
        let mut stations: HashMap<String, u32> = HashMap::new();
        // (station, time) -> (revision, file, row within the file)
        let mut best: HashMap<(u32, i64), (i32, u32, u32)> = HashMap::new();
        for (f, (_, path, bytes)) in files.iter().enumerate() {
            let mut row = 0;
            for batch in decode_columns(path, bytes.clone(), &keys)? {
                let k = RowKeys::of(&batch, dataset)?;
                for r in 0..batch.num_rows() {
                    let station = k.station(r);
                    if passes > 1 && pass_of(station, passes) != pass {
                        continue;
                    }
                    let id = match stations.get(station) {
                        Some(id) => *id,
                        None => {
                            let id = stations.len() as u32;
                            stations.insert(station.to_string(), id);
                            id
                        }
                    };
                    let revision = k.revision.value(r);
                    let at = (revision, f as u32, (row + r) as u32);
                    match best.entry((id, k.time.value(r))) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(at);
                        }
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            let (kept, kept_file, _) = *o.get();
                            moved |= files[kept_file as usize].0 != files[f].0;
                            copies |= kept == revision;
                            superseded |= kept != revision;
                            if revision > kept {
                                o.insert(at);
                            }
                        }
                    }
                }
                row += batch.num_rows();
            }
        }
        for (_, f, r) in best.into_values() {
            if let Some(slot) = kept.get_mut(f as usize).and_then(|k| k.get_mut(r as usize)) {
                *slot = true;
            }
        }
    }
    let class = match (moved, copies, superseded) {
        (true, _, _) => DayClass::Moved,
        (_, true, _) => DayClass::Copies,
        (_, _, true) => DayClass::Revised,
        _ => DayClass::Clean,
    };
    Ok((kept, class))
}

type GrainKey = (
    Option<String>,
    String,
    Option<String>,
    Option<i32>,
    Option<String>,
    i32,
);

/// Running sums of one plant's windows, by grain.
#[derive(Default)]
struct Accumulator {
    groups: HashMap<GrainKey, Group>,
}

#[derive(Clone)]
struct Group {
    windows: i64,
    sums: [Option<f64>; SUMMED.len() + CONDITIONAL.len()],
    event_count: i64,
    currency: Option<String>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            windows: 0,
            sums: [None; SUMMED.len() + CONDITIONAL.len()],
            event_count: 0,
            currency: None,
        }
    }
}

fn add_to(slot: &mut Option<f64>, value: Option<f64>) {
    if let Some(v) = value {
        *slot = Some(slot.unwrap_or(0.0) + v);
    }
}

fn text_at(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

impl Accumulator {
    /// Adds the rows of `batch` that `kept` marks.
    fn add(&mut self, batch: &RecordBatch, kept: &[bool]) -> Result<()> {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| format_err!("`{name}` is not Utf8"))
        };
        let day = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Date32Type>())
                .ok_or_else(|| format_err!("`{name}` is not a date"))
        };
        let float = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
                .ok_or_else(|| format_err!("`{name}` is not Float64"))
        };
        let (line, station, sku, shift) = (
            text("line")?,
            text("station")?,
            text("sku")?,
            text("shift")?,
        );
        let (shift_date, production_date) = (day("shift_date")?, day("production_date")?);
        let summed = SUMMED
            .iter()
            .map(|c| float(c))
            .collect::<Result<Vec<_>>>()?;
        let conditional = CONDITIONAL
            .iter()
            .map(|(_, of, when)| Ok((float(of)?, float(when)?)))
            .collect::<Result<Vec<_>>>()?;
        let events = batch
            .column_by_name("event_count")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| format_err!("`event_count` is not Int64"))?;
        let currency = text("currency")?;
        let value = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..batch.num_rows() {
            if !kept.get(i).copied().unwrap_or(false) {
                continue;
            }
            let key = (
                text_at(line, i),
                station.value(i).to_string(),
                text_at(sku, i),
                shift_date.is_valid(i).then(|| shift_date.value(i)),
                text_at(shift, i),
                production_date.value(i),
            );
            let group = self.groups.entry(key).or_default();
            group.windows += 1;
            for (slot, column) in group.sums.iter_mut().zip(&summed) {
                add_to(slot, value(column, i));
            }
            for (slot, (of, when)) in group.sums[SUMMED.len()..].iter_mut().zip(&conditional) {
                if when.is_valid(i) {
                    add_to(slot, value(of, i));
                }
            }
            group.event_count += events.value(i);
            if currency.is_valid(i) && group.currency.as_deref() < Some(currency.value(i)) {
                group.currency = Some(currency.value(i).to_string());
            }
        }
        Ok(())
    }

    /// The plant's sums as one batch, in grain order.
    fn finish(self, plant: &str) -> Result<RecordBatch> {
        let mut groups: Vec<(GrainKey, Group)> = self.groups.into_iter().collect();
        groups.sort_by(|a, b| {
            (&a.0 .1, a.0 .5, &a.0 .3, &a.0 .4, &a.0 .2, &a.0 .0)
                .cmp(&(&b.0 .1, b.0 .5, &b.0 .3, &b.0 .4, &b.0 .2, &b.0 .0))
        });
        let n = groups.len();
        let text = |f: &dyn Fn(&GrainKey) -> Option<&str>| -> ArrayRef {
            Arc::new(groups.iter().map(|(k, _)| f(k)).collect::<StringArray>())
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![plant; n])),
            text(&|k| k.0.as_deref()),
            text(&|k| Some(k.1.as_str())),
            text(&|k| k.2.as_deref()),
            Arc::new(groups.iter().map(|(k, _)| k.3).collect::<Date32Array>()),
            text(&|k| k.4.as_deref()),
            Arc::new(
                groups
                    .iter()
                    .map(|(k, _)| Some(k.5))
                    .collect::<Date32Array>(),
            ),
            Arc::new(
                groups
                    .iter()
                    .map(|(_, g)| Some(g.windows))
                    .collect::<Int64Array>(),
            ),
        ];
        for c in 0..SUMMED.len() + CONDITIONAL.len() {
            columns.push(Arc::new(
                groups
                    .iter()
                    .map(|(_, g)| g.sums[c])
                    .collect::<Float64Array>(),
            ));
        }
        columns.push(Arc::new(
            groups
                .iter()
                .map(|(_, g)| Some(g.event_count))
                .collect::<Int64Array>(),
        ));
        columns.push(Arc::new(
            groups
                .iter()
                .map(|(_, g)| g.currency.as_deref())
                .collect::<StringArray>(),
        ));
        Ok(RecordBatch::try_new(sums_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::parquet::arrow_rows::windows_batch;

    /// A day read in many passes keeps the same rows and has the same class as in one.
    #[test]
    fn a_day_read_in_passes_keeps_what_one_pass_keeps() {
        let windows = crate::sinks::parquet::tests::synthetic_windows(6, 4_000, 5);
        let revise = |every: usize, revision: i32| -> Vec<_> {
            let mut rows: Vec<_> = windows.iter().step_by(every).cloned().collect();
            for w in &mut rows {
                w.revision = revision;
            }
            rows
        };
        let mut moved = revise(11, 2);
        for w in &mut moved {
            w.plant = "OTHER".into();
        }
        let cases = [
            vec![windows.clone()],
            vec![windows.clone(), revise(3, 1)],
            vec![windows.clone(), revise(3, 1), revise(5, 1)],
            vec![windows.clone(), revise(3, 1), moved],
        ];
        let path = Path::from("day");
        let mut classes = Vec::new();
        for (n, case) in cases.iter().enumerate() {
            let files: Vec<DayFile> = case
                .iter()
                .map(|rows| {
                    let bytes = super::super::encode(&[windows_batch(rows)]).unwrap();
                    (rows[0].plant.to_string(), path.clone(), Bytes::from(bytes))
                })
                .collect();
            let one = latest_in_passes(&files, Dataset::StationWindows, 1 << 30).unwrap();
            let many = latest_in_passes(&files, Dataset::StationWindows, 7).unwrap();
            assert_eq!(one, many, "case {n}");
            classes.push(one.1);
        }
        assert_eq!(
            classes,
            [
                DayClass::Clean,
                DayClass::Revised,
                DayClass::Copies,
                DayClass::Moved
            ]
        );
    }
}
