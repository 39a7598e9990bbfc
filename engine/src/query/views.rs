//! The tables and views of a session, and which files each reads.
//!
//! `station_windows_latest` reads each UTC day of windows by the class of its fresh
//! sums (`datasets::sums`): a clean day as it is, a revised day through an anti-join on
//! its few revisions, a day with copies with `ROW_NUMBER` within each plant; those three
//! de-duplicate within a plant, so a `plant` filter passes them and prunes folders. A
//! day whose window moved plants, or whose sums are missing or stale, is de-duplicated
//! across plants (`ROW_NUMBER` by date, station and minute), where only `date` prunes.
//! The `oee_by_*` roll-ups add up `window_sums`: the fresh sums files, plus the sums of
//! the days without them, computed from their latest windows. Each class is a listing of
//! the same files (`Class::keep`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::TableProvider;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::path::Path;
use object_store::ObjectStore;
use stationflow_schemas::window::{EVENT_COLUMNS, WINDOW_COLUMNS};

use super::days::DayPrunedTable;
use crate::access::scope::ScopedTable;
use crate::datasets::sums::{sums_schema, DayClass, Freshness, CONDITIONAL, GRAIN, SUMMED, SUMS};
use crate::datasets::Dataset;
use crate::error::Result;
use crate::sinks::parquet::arrow_rows::{event_schema, window_schema};
use crate::store::commits::{self, CommittedView};
use crate::store::Root;

/// The roll-up views: name, grouping columns, and what they are for.
pub const ROLLUPS: [(&str, &str, &str); 5] = [
    (
        "oee_by_shift",
        "plant, line, station, shift_date, shift",
        "each station's shifts",
    ),
    (
        "oee_by_station_day",
        "plant, line, station, production_date",
        "each station's production days",
    ),
    (
        "oee_by_line_day",
        "plant, line, production_date",
        "each line's production days",
    ),
    (
        "oee_by_plant_day",
        "plant, production_date",
        "each plant's production days",
    ),
    (
        "oee_by_sku_day",
        "plant, sku, production_date",
        "each SKU's production days",
    ),
];

/// The sums a roll-up keeps, and the ratios it derives from them, over windows.
/// Performance and OEE use only windows that have an ideal, so output without one does
/// not inflate them.
pub const ROLLUP_MEASURES: &str = "
    SUM(shift_s) AS shift_s, SUM(planned_s) AS planned_s, SUM(planned_stop_s) AS planned_stop_s,
    SUM(schedule_loss_s) AS schedule_loss_s, SUM(productive_s) AS productive_s, SUM(run_s) AS run_s,
    SUM(downtime_s) AS downtime_s, SUM(no_data_s) AS no_data_s,
    SUM(good_qty) AS good_qty, SUM(reject_qty) AS reject_qty, SUM(total_qty) AS total_qty,
    SUM(ideal_qty) AS ideal_qty, SUM(target_qty) AS target_qty,
    SUM(productive_s) / NULLIF(SUM(shift_s), 0) AS utilisation,
    SUM(run_s) / NULLIF(SUM(planned_s), 0) AS availability,
    SUM(CASE WHEN target_qty IS NOT NULL THEN total_qty END) / NULLIF(SUM(target_qty), 0) AS performance,
    SUM(good_qty) / NULLIF(SUM(total_qty), 0) AS quality,
    SUM(CASE WHEN ideal_qty IS NOT NULL THEN good_qty END) / NULLIF(SUM(ideal_qty), 0) AS oee,
    SUM(availability_loss_s) AS availability_loss_s, SUM(performance_loss_s) AS performance_loss_s,
    SUM(quality_loss_s) AS quality_loss_s, SUM(availability_loss_cost) AS availability_loss_cost,
    SUM(performance_loss_cost) AS performance_loss_cost, SUM(quality_loss_cost) AS quality_loss_cost,
    SUM(loss_cost) AS loss_cost, SUM(schedule_loss_cost) AS schedule_loss_cost,
    SUM(planned_stop_cost) AS planned_stop_cost, MAX(currency) AS currency,
    SUM(energy_kwh) AS energy_kwh, SUM(event_count) AS event_count";

/// `ROLLUP_MEASURES` over `window_sums` rows: the same columns, in the same order.
pub fn sums_measures() -> String {
    ROLLUP_MEASURES
        .replace(
            "SUM(CASE WHEN target_qty IS NOT NULL THEN total_qty END)",
            "SUM(total_qty_with_target)",
        )
        .replace(
            "SUM(CASE WHEN ideal_qty IS NOT NULL THEN good_qty END)",
            "SUM(good_qty_with_ideal)",
        )
}

/// The `window_sums` columns computed from latest windows (the query-time side of
/// `datasets::sums`), in the sums files' order after `plant`.
fn sums_of_windows() -> String {
    let mut columns = vec!["COUNT(*) AS windows".to_string()];
    columns.extend(SUMMED.iter().map(|c| format!("SUM({c}) AS {c}")));
    columns.extend(CONDITIONAL.iter().map(|(name, of, when)| {
        format!("SUM(CASE WHEN {when} IS NOT NULL THEN {of} END) AS {name}")
    }));
    columns.push("SUM(event_count) AS event_count".into());
    columns.push("MAX(currency) AS currency".into());
    columns.join(", ")
}

/// Which files of a dataset a hidden table lists, by what its day's class says.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Days where no row is superseded.
    Clean,
    /// Days where only lower revisions are superseded.
    Revised,
    /// Days where some revision is there twice.
    Copies,
    /// Days with a key in two plants, or without a class that matches their files.
    AcrossPlants,
    /// Days of windows without fresh sums: their sums are computed at query time.
    Unsummed,
    /// Fresh `window_sums` files.
    Sums,
}

/// A hidden table: one kind of files of one dataset.
#[derive(Debug, Clone, Copy)]
struct Class {
    dataset: Dataset,
    kind: Kind,
}

const fn class(dataset: Dataset, kind: Kind) -> Class {
    Class { dataset, kind }
}

const WINDOWS: Dataset = Dataset::StationWindows;
const EVENTS: Dataset = Dataset::DowntimeEvents;

impl Class {
    const ALL: [Class; 10] = [
        class(WINDOWS, Kind::Clean),
        class(WINDOWS, Kind::Revised),
        class(WINDOWS, Kind::Copies),
        class(WINDOWS, Kind::AcrossPlants),
        class(WINDOWS, Kind::Unsummed),
        class(WINDOWS, Kind::Sums),
        class(EVENTS, Kind::Clean),
        class(EVENTS, Kind::Revised),
        class(EVENTS, Kind::Copies),
        class(EVENTS, Kind::AcrossPlants),
    ];

    fn kind_name(self) -> &'static str {
        match self.kind {
            Kind::Clean => "clean",
            Kind::Revised => "revised",
            Kind::Copies => "copies",
            Kind::AcrossPlants => "across_plants",
            Kind::Unsummed => "unsummed",
            Kind::Sums => "sums",
        }
    }

    /// The table's name in a session.
    fn table(self) -> String {
        match self.kind {
            Kind::Sums => format!("{SUMS}_files"),
            _ => format!("{}_{}_files", self.dataset.name(), self.kind_name()),
        }
    }

    /// The dataset folder (under the root) the table lists.
    fn folder(self) -> &'static str {
        match self.kind {
            Kind::Sums => SUMS,
            _ => self.dataset.name(),
        }
    }

    /// The column whose UTC day is each row's `date` folder.
    fn instant(self) -> Option<&'static str> {
        match self.kind {
            Kind::Sums => None,
            _ => Some(self.dataset.time_column()),
        }
    }

    fn schema(self) -> SchemaRef {
        match (self.kind, self.dataset) {
            (Kind::Sums, _) => sums_schema(),
            (_, Dataset::StationWindows) => window_schema(),
            (_, Dataset::DowntimeEvents) => event_schema(),
        }
    }

    /// The URL of the store that lists this class: the root's path under a scheme of
    /// its own.
    fn root_url(self, root: &Root) -> Result<url::Url> {
        let url = url::Url::parse(&root.url)?;
        let scheme = format!("stationflow-{}-{}", self.folder(), self.kind_name());
        Ok(url::Url::parse(&format!(
            "{}://view{}",
            scheme.replace('_', "-"),
            url.path()
        ))?)
    }

    /// Whether `path` is in this class, by `freshness`.
    fn holds(self, freshness: &Freshness, path: &Path) -> bool {
        let date = date_of(path);
        let class = match self.dataset {
            Dataset::StationWindows => date.and_then(|d| freshness.class(d)),
            Dataset::DowntimeEvents => date.and_then(|d| freshness.event_class(d)),
        };
        match self.kind {
            Kind::Clean => class == Some(DayClass::Clean),
            Kind::Revised => class == Some(DayClass::Revised),
            Kind::Copies => class == Some(DayClass::Copies),
            Kind::AcrossPlants => matches!(class, None | Some(DayClass::Moved)),
            Kind::Unsummed => class.is_none(),
            Kind::Sums => freshness.is_fresh(path),
        }
    }
}

/// The freshness of a root's sums and classes, loaded when a statement first lists a
/// class's table (a statement that reads none, `SELECT 1`, pays nothing), then kept for
/// the statement: every table of one statement sees the same classes.
struct LazyFreshness {
    root: Root,
    commits: BTreeMap<i32, u64>,
    loaded: tokio::sync::OnceCell<Freshness>,
}

/// The files of one class, as a listing filter.
struct ClassFilter {
    class: Class,
    freshness: Arc<LazyFreshness>,
}

#[async_trait::async_trait]
impl commits::Keep for ClassFilter {
    async fn prepare(&self) -> object_store::Result<()> {
        let lazy = &self.freshness;
        lazy.loaded
            .get_or_try_init(|| Freshness::load(&lazy.root, &lazy.commits))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "stationflow",
                source: e.into(),
            })?;
        Ok(())
    }

    fn keep(&self, path: &Path) -> bool {
        let loaded = self.freshness.loaded.get();
        loaded.is_some_and(|f| self.class.holds(f, path))
    }
}

/// The `date=` folder of a dataset file's path.
fn date_of(path: &Path) -> Option<&str> {
    path.as_ref()
        .split('/')
        .find_map(|part| part.strip_prefix("date="))
}

fn without(schema: &SchemaRef, column: &str) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != column)
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// Registers table `name` over the hive-partitioned Parquet files at `url`; filters on
/// `instant`, whose UTC day is each row's `date`, prune `date` folders too.
fn register_files(
    ctx: &SessionContext,
    name: &str,
    url: &str,
    schema: SchemaRef,
    instant: Option<&'static str>,
    scope: Option<&Arc<[String]>>,
) -> Result<()> {
    // `plant` comes from the partition path (so filters on it prune files); the copy
    // inside each file is left out of the table schema.
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("plant".to_string(), DataType::Utf8),
            ("date".to_string(), DataType::Utf8),
        ]);
    let config = ListingTableConfig::new(ListingTableUrl::parse(url)?)
        .with_listing_options(options)
        .with_schema(without(&schema, "plant"));
    let mut table: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
    if let Some(instant) = instant {
        table = Arc::new(DayPrunedTable::new(table, instant));
    }
    let table = match scope {
        Some(plants) => Arc::new(ScopedTable::new(table, plants.clone())),
        None => table,
    };
    // Registered again when a server's session is refreshed.
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

/// Memory a query of `stationflow query` (and of the commands that summarise their
/// output) may hold before it spills or fails.
pub const DEFAULT_MEMORY_MB: usize = 2048;

/// The runtime every session needs: its memory pool, and no cache of file listings.
/// Listing caches are keyed by path, and the views list the same paths through stores
/// that show different files (`Class`), so a cached listing would be the wrong one.
pub fn runtime_env(memory_bytes: usize) -> Result<Arc<RuntimeEnv>> {
    // Fair to what can spill: a sort gets its share of the pool beside the repartitions
    // and joins of the same query, where the greedy pool let the first take it all.
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(memory_bytes),
        std::num::NonZeroUsize::new(5).expect("not zero"),
    );
    Ok(RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_object_list_cache_limit(0)
        .build_arc()?)
}

/// A session with every table and view registered over the datasets at `root`.
pub async fn session(root: &Root) -> Result<SessionContext> {
    limited_session(root, DEFAULT_MEMORY_MB << 20).await
}

/// `session`, its rows limited to the plants of `scope` where one is given (a member's:
/// `access::scope`); every view reads the scoped tables.
pub async fn scoped_session(root: &Root, scope: Option<Arc<[String]>>) -> Result<SessionContext> {
    new_session(root, DEFAULT_MEMORY_MB << 20, scope).await
}

/// `session` with a memory pool of `memory_bytes`.
pub async fn limited_session(root: &Root, memory_bytes: usize) -> Result<SessionContext> {
    new_session(root, memory_bytes, None).await
}

async fn new_session(
    root: &Root,
    memory_bytes: usize,
    scope: Option<Arc<[String]>>,
) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime_env(memory_bytes)?);
    register_all(ctx, root, scope).await
}

/// Registers every table and view of `session` in `ctx` (a context built with the
/// caller's limits: `serve`'s memory pool).
pub async fn register_all(
    ctx: SessionContext,
    root: &Root,
    scope: Option<Arc<[String]>>,
) -> Result<SessionContext> {
    register_store(&ctx, root).await?;
    if let Some(dir) = &root.local {
        for d in ["station_windows", "downtime_events", SUMS] {
            std::fs::create_dir_all(dir.join(d))?;
        }
    }
    let scope = scope.as_ref();
    for (dataset, schema) in [(WINDOWS, window_schema()), (EVENTS, event_schema())] {
        let name = dataset.name();
        let url = format!("{}{name}/", root.url);
        let instant = Some(dataset.time_column());
        register_files(&ctx, &format!("{name}_files"), &url, schema, instant, scope)?;
    }
    for class in Class::ALL {
        let url = format!("{}{}/", class.root_url(root)?, class.folder());
        let (schema, instant) = (class.schema(), class.instant());
        register_files(&ctx, &class.table(), &url, schema, instant, scope)?;
    }
    for sql in view_definitions() {
        ctx.sql(&sql).await?;
    }
    Ok(ctx)
}

/// Every view, in the order they build on each other.
fn view_definitions() -> Vec<String> {
    let all_of = |dataset: Dataset| {
        let name = dataset.name();
        let columns = columns_of(dataset, "");
        format!("CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM {name}_files")
    };
    let grain = format!("plant, date, {}", GRAIN.join(", "));
    let mut views = vec![
        all_of(WINDOWS),
        format!(
            "CREATE OR REPLACE VIEW station_windows_latest AS {}",
            latest(WINDOWS, "TRUE")
        ),
        all_of(EVENTS),
        // A retracted span hides the revisions before it, then goes itself.
        format!(
            "CREATE OR REPLACE VIEW downtime_events_latest AS {}",
            latest(EVENTS, "reason <> 'retracted'")
        ),
        format!(
            "CREATE OR REPLACE VIEW {SUMS} AS
            SELECT {grain}, {columns} FROM {SUMS}_files
            UNION ALL
            SELECT {grain}, {computed} FROM ({unsummed}) GROUP BY {grain}",
            columns = sums_columns(),
            computed = sums_of_windows(),
            unsummed = row_number_latest(class(WINDOWS, Kind::Unsummed), false, "TRUE"),
        ),
    ];
    let measures = sums_measures();
    for (name, keys, _) in ROLLUPS {
        views.push(format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {keys}, {measures} FROM {SUMS} GROUP BY {keys}"
        ));
    }
    views
}

/// The dataset's columns, quoted (`end` is a keyword), prefixed with `alias.` if given.
fn columns_of(dataset: Dataset, alias: &str) -> String {
    let names: &[&str] = match dataset {
        Dataset::StationWindows => &WINDOW_COLUMNS,
        Dataset::DowntimeEvents => &EVENT_COLUMNS,
    };
    names
        .iter()
        .chain(&["date"])
        .map(|c| format!("{alias}\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The highest revision of each key of `dataset` that passes `keep`, each day read by
/// its class: as it is, through an anti-join on its revisions, or with `ROW_NUMBER`.
/// The hash table must be built from the revisions (a few per cent of the rows), so
/// they come first, filtered with `<>`: DataFusion swaps the inputs when the first looks
/// bigger, and it guesses a `<>` keeps as few rows as `reason <> 'retracted'` on the
/// other side, where `revision > 0` would look (from the files' minimum and maximum)
/// like most of them. `EXPLAIN` shows `RightAnti` with the revisions as the first input.
fn latest(dataset: Dataset, keep: &str) -> String {
    let time = format!("\"{}\"", dataset.time_column());
    let revised = class(dataset, Kind::Revised).table();
    format!(
        "SELECT {columns} FROM {clean} WHERE {keep}
        UNION ALL
        SELECT {prefixed} FROM (
            SELECT plant, date, station, {time}, revision FROM {revised} WHERE revision <> 0) r
        RIGHT ANTI JOIN {revised} l
        ON l.plant = r.plant AND l.date = r.date AND l.station = r.station
            AND l.{time} = r.{time} AND r.revision > l.revision
        WHERE {keep}
        UNION ALL
        {copies}
        UNION ALL
        {across_plants}",
        columns = columns_of(dataset, ""),
        clean = class(dataset, Kind::Clean).table(),
        prefixed = columns_of(dataset, "l."),
        copies = row_number_latest(class(dataset, Kind::Copies), true, keep),
        across_plants = row_number_latest(class(dataset, Kind::AcrossPlants), false, keep),
    )
}

/// The highest revision of each key in `class`'s files, by `ROW_NUMBER`. `date` (the UTC
/// day of the key's time, so every revision of a key is in the same one) leads the
/// partitioning, and `plant` where the class keeps a key's rows in one plant: a filter
/// on them passes the window function and prunes folders.
fn row_number_latest(class: Class, within_plant: bool, keep: &str) -> String {
    let by = if within_plant { "plant, " } else { "" };
    format!(
        "SELECT {columns} FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY {by}date, station, \"{time}\" ORDER BY revision DESC) AS rn
            FROM {table}) WHERE rn = 1 AND {keep}",
        columns = columns_of(class.dataset, ""),
        time = class.dataset.time_column(),
        table = class.table(),
    )
}

/// The `window_sums` columns after the grain.
fn sums_columns() -> String {
    let schema = sums_schema();
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|c| *c != "plant" && !GRAIN.contains(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Registers `root`'s store in `ctx` as it is now: live output shows once committed,
/// never part of an epoch (store::commits), and each class of files the views read
/// apart as the sums say now. Tables list their files at each scan, so this is all a
/// long-lived session needs to see what landed since.
pub async fn register_store(ctx: &SessionContext, root: &Root) -> Result<()> {
    let url = url::Url::parse(&root.url)?;
    let commits = commits::load(&*root.store, &root.prefix).await?;
    let freshness = Arc::new(LazyFreshness {
        root: root.clone(),
        commits: commits.clone(),
        loaded: tokio::sync::OnceCell::new(),
    });
    let committed: Arc<dyn ObjectStore> = Arc::new(CommittedView::new(root.store.clone(), commits));
    ctx.register_object_store(&url, committed.clone());
    for class in Class::ALL {
        let filter = ClassFilter {
            class,
            freshness: freshness.clone(),
        };
        let view = CommittedView::filtered(committed.clone(), class.kind_name(), Arc::new(filter));
        ctx.register_object_store(&class.root_url(root)?, Arc::new(view));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::Float64Type;
    use object_store::memory::InMemory;
    use stationflow_schemas::window::{DowntimeEvent, StationWindow};

    use super::*;
    use crate::datasets::{compact, encode, put, sums};
    use crate::sinks::parquet::arrow_rows::{events_batch, windows_batch};
    use crate::sinks::parquet::{partition_path, utc_day};

    const DAY_MS: i64 = 86_400_000;

    fn memory_root() -> Root {
        Root {
            store: Arc::new(InMemory::new()),
            prefix: Path::from("out"),
            url: "memory:///out/".into(),
            local: None,
        }
    }

    /// `rows` as one file per partition, named `name`; and a downtime event for each
    /// row in `downtime_events` likewise (revision 2 retracts it).
    async fn write(root: &Root, rows: &[StationWindow], name: &str) {
        let mut by_partition: std::collections::BTreeMap<(String, i32), Vec<StationWindow>> =
            Default::default();
        for w in rows {
            let key = (w.plant.to_string(), utc_day(w.window_start));
            by_partition.entry(key).or_default().push(w.clone());
        }
        for ((plant, day), rows) in by_partition {
            let path = partition_path(&root.prefix, "station_windows", &plant, day, name);
            put(
                &*root.store,
                &path,
                encode(&[windows_batch(&rows)]).unwrap(),
            )
            .await
            .unwrap();
            let events: Vec<DowntimeEvent> = rows.iter().map(event_of).collect();
            let path = partition_path(&root.prefix, "downtime_events", &plant, day, name);
            put(
                &*root.store,
                &path,
                encode(&[events_batch(&events)]).unwrap(),
            )
            .await
            .unwrap();
        }
    }

    fn event_of(w: &StationWindow) -> DowntimeEvent {
        DowntimeEvent {
            plant: w.plant.to_string(),
            line: w.line.as_deref().map(str::to_string),
            station: w.station.to_string(),
            start: w.window_start,
            end: w.window_end,
            duration_s: 60.0,
            downtime_s: w.downtime_s + w.good_qty,
            reason: if w.revision == 2 { "retracted" } else { "jam" }.into(),
            error_code: None,
            revision: w.revision,
            emitted_at: w.emitted_at,
        }
    }

    fn shifted(rows: &[StationWindow], days: i64) -> Vec<StationWindow> {
        rows.iter()
            .cloned()
            .map(|mut w| {
                w.window_start += days * DAY_MS;
                w.window_end += days * DAY_MS;
                w.production_date += days as i32;
                w
            })
            .collect()
    }

    fn revised(rows: &[StationWindow], revision: i32, every: usize) -> Vec<StationWindow> {
        rows.iter()
            .step_by(every)
            .cloned()
            .map(|mut w| {
                w.revision = revision;
                w.good_qty += 1.0;
                w.loss_cost = w.loss_cost.map(|c| c + 0.5);
                w
            })
            .collect()
    }

    /// Today's definitions, before the sums: the reference every view must equal.
    fn reference(view: &str) -> String {
        let latest = format!(
            "SELECT {}, date FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, window_start ORDER BY revision DESC) AS rn FROM station_windows) WHERE rn = 1",
            WINDOW_COLUMNS.join(", ")
        );
        if view == "station_windows_latest" {
            return latest;
        }
        if view == "downtime_events_latest" {
            let columns = EVENT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ");
            return format!(
                "SELECT {columns}, date FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, \"start\" ORDER BY revision DESC) AS rn FROM downtime_events) WHERE rn = 1 AND reason <> 'retracted'"
            );
        }
        let (_, keys, _) = ROLLUPS.iter().find(|(n, _, _)| *n == view).unwrap();
        format!("SELECT {keys}, {ROLLUP_MEASURES} FROM ({latest}) GROUP BY {keys}")
    }

    /// Every cell as text, floats as numbers for a tolerant comparison.
    fn cells(batches: &[RecordBatch]) -> Vec<Vec<Result<Option<f64>, String>>> {
        let mut rows = Vec::new();
        for b in batches {
            for r in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .map(|c| match c.as_primitive_opt::<Float64Type>() {
                            Some(f) => Ok(f.is_valid(r).then(|| f.value(r))),
                            None => Err(arrow::util::display::array_value_to_string(c, r).unwrap()),
                        })
                        .collect(),
                );
            }
        }
        rows
    }

    async fn assert_views_as_before(root: &Root, when: &str) {
        let ctx = session(root).await.unwrap();
        let mut views = vec![
            ("station_windows_latest", "date, station, window_start"),
            ("downtime_events_latest", "date, station, \"start\""),
        ];
        views.extend(ROLLUPS.iter().map(|(n, k, _)| (*n, *k)));
        for (view, keys) in views {
            let narrow = if view.ends_with("latest") {
                "plant = 'P1' AND date = '2026-03-05'"
            } else {
                "plant = 'P2'"
            };
            for filter in ["TRUE", narrow] {
                let now = format!("SELECT * FROM {view} WHERE {filter} ORDER BY {keys}");
                let before = format!(
                    "SELECT * FROM ({}) WHERE {filter} ORDER BY {keys}",
                    reference(view)
                );
                let now = cells(&ctx.sql(&now).await.unwrap().collect().await.unwrap());
                let before = cells(&ctx.sql(&before).await.unwrap().collect().await.unwrap());
                assert_eq!(now.len(), before.len(), "{when}: {view} where {filter}");
                assert!(!now.is_empty(), "{when}: {view} where {filter} is empty");
                for (a, b) in now.iter().zip(&before) {
                    for (x, y) in a.iter().zip(b) {
                        let same = match (x, y) {
                            (Ok(Some(x)), Ok(Some(y))) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                            _ => x == y,
                        };
                        assert!(same, "{when}: {view} where {filter}: {a:?} != {b:?}");
                    }
                }
            }
        }
    }

    /// The day's class by its sums, after checking the events' day has the same.
    fn class_of(root: &Root, runtime: &tokio::runtime::Runtime, date: &str) -> Option<DayClass> {
        let freshness = runtime
            .block_on(Freshness::load(root, &Default::default()))
            .unwrap();
        assert_eq!(freshness.event_class(date), freshness.class(date), "{date}");
        freshness.class(date)
    }

    #[test]
    fn every_view_answers_as_before_whatever_the_sums_say() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let root = memory_root();
        let base = crate::sinks::parquet::tests::synthetic_windows(3, 3_000, 7);
        let first_day = crate::sinks::parquet::partition_date(base[0].window_start);
        let march_4 = chrono::NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        let day = |n: u64| (march_4 + chrono::Days::new(n)).to_string();
        // Rename the plant so the filter above holds on day two.
        let base: Vec<StationWindow> = base
            .into_iter()
            .map(|mut w| {
                w.plant = "P1".into();
                w
            })
            .collect();
        let offset = {
            let first = chrono::NaiveDate::parse_from_str(&first_day, "%Y-%m-%d").unwrap();
            (march_4 - first).num_days()
        };
        let clean = shifted(&base, offset);
        let revised_day = shifted(&base, offset + 1);
        let copies_day = shifted(&base, offset + 2);
        let moved_day = shifted(&base, offset + 3);
        // A revision that moves a station to another plant supersedes across folders.
        let mut moved = revised(&moved_day, 2, 17);
        for w in &mut moved {
            w.plant = "P2".into();
        }
        runtime.block_on(async {
            write(&root, &clean, "part-000000.parquet").await;
            write(&root, &revised_day, "part-000001.parquet").await;
            write(&root, &revised(&revised_day, 1, 5), "part-000002.parquet").await;
            write(&root, &revised(&revised_day, 2, 10), "part-000003.parquet").await;
            write(&root, &copies_day, "part-000004.parquet").await;
            write(&root, &copies_day, "part-000005.parquet").await;
            write(&root, &revised(&copies_day, 1, 3), "part-000006.parquet").await;
            write(&root, &moved_day, "part-000007.parquet").await;
            write(&root, &moved, "part-000008.parquet").await;
        });
        runtime.block_on(assert_views_as_before(&root, "without sums"));

        let done = runtime.block_on(sums::refresh(&root)).unwrap();
        assert_eq!(done.len(), 4, "{done:?}");
        assert_eq!(class_of(&root, &runtime, &day(0)), Some(DayClass::Clean));
        assert_eq!(class_of(&root, &runtime, &day(1)), Some(DayClass::Revised));
        assert_eq!(class_of(&root, &runtime, &day(2)), Some(DayClass::Copies));
        assert_eq!(class_of(&root, &runtime, &day(3)), Some(DayClass::Moved));
        runtime.block_on(assert_views_as_before(&root, "with fresh sums"));
        assert!(runtime.block_on(sums::refresh(&root)).unwrap().is_empty());

        // New windows after the sums: a late revision on the clean day, a new day.
        runtime.block_on(async {
            write(&root, &revised(&clean, 1, 7), "part-000010.parquet").await;
            write(&root, &shifted(&base, offset + 4), "part-000009.parquet").await;
        });
        assert_eq!(class_of(&root, &runtime, &day(0)), None);
        runtime.block_on(assert_views_as_before(&root, "with stale sums"));

        // Compacted partitions beside uncompacted ones, sums stale, then fresh again.
        runtime
            .block_on(compact::compact(&root, Some(&day(2)), 1_000_000))
            .unwrap();
        runtime.block_on(assert_views_as_before(&root, "after compaction"));
        let done = runtime.block_on(sums::refresh(&root)).unwrap();
        assert_eq!(done.len(), 3, "{done:?}"); // the two compacted days and the new one
        assert_eq!(class_of(&root, &runtime, &day(0)), Some(DayClass::Clean));
        runtime.block_on(assert_views_as_before(&root, "compacted, with fresh sums"));
    }
}
