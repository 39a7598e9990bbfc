//! The replay driver: every input file, merged in event-time order → decode →
//! `StationFlow` (with "now" the largest event time seen) → windows and events to Parquet,
//! rejections to dead letters. Watermarks advance every `batch_records` records; the
//! records admitted since the last advance go into their stations just before it,
//! station by station. Each advance refreshes the stations in `threads` runs of
//! neighbours, each on its own thread and into its own Parquet writers. The end of input
//! closes every window up to the last record's minute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use stationflow_operators::{Counters, Emitted, FlowConfig, Now, StationFlow};
use stationflow_schemas::time::format_ms;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};
use stationflow_schemas::{Context, RejectReason};

use super::wall_ms;
use crate::datasets::remove;
use crate::datasets::sums::{self, CLASSES, SUMS};
use crate::error::{Context as _, Result};
use crate::kafka::partitioner::partition_for;
use crate::sinks::dead_letter::DeadLetterSink;
use crate::sinks::parquet::{DatasetWriter, FileNames, ParquetSinkConfig, SinkStats};
use crate::sources::files::FilesConfig;
use crate::store::{list_all, Root};

pub struct ReplayConfig {
    pub source: FilesConfig,
    pub context: Context,
    pub flow: FlowConfig,
    pub sink: ParquetSinkConfig,
    /// Records between watermark advances.
    pub batch_records: usize,
    /// Threads an advance refreshes the stations on, each writing files of its own.
    pub threads: usize,
    /// The share of the stations this replay answers for; all when `None`.
    pub shard: Option<Shard>,
}

/// One of `count` replays that split the stations between them by a stable hash
/// (Kafka's default partitioner) of the station's code, or of its plant's code
/// (`by_plant`): `replay --shard index/count [--plants]`. Each writes files of its own
/// and replaces only those, so the shards may run at once on different machines into
/// one root. A station the context does not know goes by its code either way; records no
/// station can be read from (malformed lines) are the first shard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// Whole plants to a shard, by the plant of the station's latest version.
    pub by_plant: bool,
}

impl Shard {
    /// `i/N`, with `i` from 0 to N - 1.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard {
                index,
                count,
                by_plant: false,
            }),
            _ => Err(format!(
                "{text:?} is not a shard: give INDEX/COUNT, INDEX from 0 to COUNT - 1 (0/3, 1/3, 2/3)"
            )),
        }
    }

    /// Whether this shard answers for `station` of `plant`.
    pub fn owns(self, station: &str, plant: &str) -> bool {
        self.owns_key(if self.by_plant { plant } else { station })
    }

    /// Whether `key` hashes to this shard.
    fn owns_key(self, key: &str) -> bool {
        partition_for(key, self.count) == self.index
    }

    fn dead_letters(self) -> String {
        format!("dead_letter-s{}of{}.jsonl", self.index, self.count)
    }
}

/// Whether `shard`'s replay answers for the records of `station`. A station the context
/// does not know (its records dead-lettered as `unknown_station`) goes by its code.
fn answers_for(flow: &StationFlow, shard: Shard, station: &str) -> bool {
    (flow.answers_for(station)).unwrap_or_else(|| shard.owns_key(station))
}

/// Where a replay's dead letters go.
fn dead_letters_name(shard: Option<Shard>) -> String {
    shard.map_or("dead_letter.jsonl".into(), Shard::dead_letters)
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplayReport {
    pub files: usize,
    pub bytes_read: u64,
    pub counters: Counters,
    pub debounced: u64,
    pub dead_letters: BTreeMap<RejectReason, u64>,
    pub windows: SinkStats,
    pub events: SinkStats,
    /// Days whose `window_sums` were written.
    pub summed_days: usize,
    /// Records read and left to the other shards.
    pub other_shards: u64,
    pub elapsed: Duration,
}

/// Removes what an earlier replay wrote under `root`: a replay owns its output
/// datasets; a shard its own files and dead letters (the sums, shared by all, go stale
/// and are computed again).
pub fn clear_outputs(
    root: &Root,
    runtime: &tokio::runtime::Handle,
    shard: Option<Shard>,
) -> Result<()> {
    let names: &[&str] = match shard {
        None => &["station_windows", "downtime_events", SUMS, CLASSES],
        Some(_) => &["station_windows", "downtime_events"],
    };
    let prefix = shard.map(|s| FileNames::replay_prefix(Some((s.index, s.count))));
    let owned = |path: &object_store::path::Path| {
        (prefix.as_ref()).is_none_or(|p| path.filename().is_some_and(|f| f.starts_with(p)))
    };
    runtime.block_on(async {
        let mut paths = vec![root.child(&dead_letters_name(shard))];
        for name in names {
            let listed = list_all(&*root.store, &root.child(name)).await?;
            paths.extend(listed.into_iter().map(|m| m.location).filter(owned));
        }
        for path in paths {
            remove(&*root.store, &path).await?;
        }
        Ok(())
    })
}

/// Windows a run of stations may hold in an advance before they go to its writers: a
/// row is 712 bytes before its text, and the buffer doubles past this, so about 12 MB.
/// An advance emits about one window a station: a plant of thousands of stations, or a
/// jump of the watermarks over hours (a shutdown in the history), reaches it.
const DRAIN_ROWS: usize = 8_192;

/// The writers of one run of stations.
struct RunWriters {
    windows: DatasetWriter<StationWindow>,
    events: DatasetWriter<DowntimeEvent>,
}

impl RunWriters {
    fn new(
        root: &Root,
        runtime: &tokio::runtime::Handle,
        config: &ReplayConfig,
        run: usize,
    ) -> Self {
        let names = FileNames::Replay {
            shard: config.shard.map(|s| (s.index, s.count)),
            thread: (config.threads > 1).then_some(run),
        };
        RunWriters {
            windows: config.sink.build(root, runtime).named(names),
            events: config.sink.build(root, runtime).named(names),
        }
    }

    /// Hands a run's rows to the writers, and shows on the progress bar how far in event
    /// time the windows have come (records stand still while an advance walks a long
    /// jump, a day of windows at a time).
    fn write(&mut self, rows: &mut Emitted, progress: &ProgressBar) -> Result<()> {
        if !progress.is_hidden() {
            if let Some(end) = rows.windows.iter().map(|w| w.window_end).max() {
                progress.set_message(format!("windows to {}", format_ms(end)));
            }
        }
        self.windows.write(rows.windows.drain(..))?;
        self.events.write(rows.events.drain(..))
    }
}

pub fn run(
    config: ReplayConfig,
    root: &Root,
    runtime: &tokio::runtime::Handle,
    progress: &ProgressBar,
) -> Result<ReplayReport> {
    let started = Instant::now();
    let mut inputs = config.source.build()?;
    clear_outputs(root, runtime, config.shard)?;
    let runs = config.threads.max(1);
    let mut writers: Vec<RunWriters> = (0..runs)
        .map(|run| RunWriters::new(root, runtime, &config, run))
        .collect();
    let mut flow = StationFlow::new(config.context, config.flow);
    flow.forgo_underway();
    if let Some(shard) = config.shard {
        flow = flow.with_stations(Arc::new(move |station: &str, plant: &str| {
            shard.owns(station, plant)
        }));
    }
    flow.set_wall_clock(wall_ms());
    let mut other_shards = 0u64;
    let mut dead = DeadLetterSink::new()?;
    let mut now = i64::MIN;
    let mut n = 0usize;
    // Records admitted since the last advance, inserted station by station before it.
    let mut admitted = Vec::with_capacity(config.batch_records);
    let write = |run: &mut RunWriters, rows: &mut Emitted| run.write(rows, progress);
    while let Some((item, original)) = inputs.next_item()? {
        let shard = config.shard;
        let rejected = match item.decoded() {
            Ok(record) if shard.is_some_and(|s| !answers_for(&flow, s, &record.station)) => {
                other_shards += 1;
                // Another shard's record moves "now" and the origin as in one replay of all.
                if flow.note_elsewhere(record, Now(now)) {
                    now = now.max(record.ts);
                }
                None
            }
            Err(_) if shard.is_some_and(|s| s.index != 0) => {
                other_shards += 1;
                None
            }
            Ok(record) => {
                // A rejected record (from the future, say) must not become "now".
                let at = now.max(record.ts);
                match flow.admit(record, Now(at), &mut admitted) {
                    Ok(()) => {
                        now = at;
                        None
                    }
                    Err(reason) => Some((reason, StationFlow::rejection_detail(reason).into())),
                }
            }
            Err(rejection) => {
                flow.count_undecodable(rejection.reason);
                Some((rejection.reason, rejection.detail.clone()))
            }
        };
        if let Some((reason, detail)) = rejected {
            (dead.write(reason, &item.position, &detail, original)).with_context(|| {
                format!(
                    "spooling dead letter {} ({reason}, {}) in {} until the end of the replay \
                     (TMPDIR moves it)",
                    dead.total(),
                    item.position,
                    std::env::temp_dir().display()
                )
            })?;
        }
        n += 1;
        if n.is_multiple_of(config.batch_records) {
            flow.set_wall_clock(wall_ms());
            flow.insert(&mut admitted);
            flow.advance_into(Now(now), DRAIN_ROWS, &mut writers, write)?;
            progress.inc(config.batch_records as u64);
        }
    }
    flow.insert(&mut admitted);
    if now > i64::MIN {
        flow.advance_into(Now(now), DRAIN_ROWS, &mut writers, write)?;
        flow.finish_into(Now(now), DRAIN_ROWS, &mut writers, write)?;
    }
    progress.set_position(n as u64);
    let (mut windows, mut events) = (SinkStats::default(), SinkStats::default());
    for run in writers {
        windows.add(&run.windows.close()?);
        events.add(&run.events.close()?);
    }
    let by_reason = dead.by_reason.clone();
    dead.close(
        &root.store,
        &root.prefix,
        &dead_letters_name(config.shard),
        runtime,
    )?;
    let (debounced, counters) = (flow.debounced(), flow.counters().clone());
    // The stations' state (the allowed lateness of every station) goes before the sums
    // read a day of windows back: the two would otherwise add up in the peak.
    drop(flow);
    let summed = runtime.block_on(sums::refresh_days_at_once(root, runs))?;
    Ok(ReplayReport {
        files: inputs.files,
        bytes_read: inputs.bytes,
        debounced,
        counters,
        dead_letters: by_reason,
        windows,
        events,
        summed_days: summed.len(),
        other_shards,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn a_shard_is_index_of_count() {
        let shard = |index, count, by_plant| Shard {
            index,
            count,
            by_plant,
        };
        assert_eq!(Shard::parse("2/3"), Ok(shard(2, 3, false)));
        for wrong in ["3/3", "1", "a/3", "1/0", "-1/3", ""] {
            let error = Shard::parse(wrong).unwrap_err();
            assert!(error.contains("INDEX/COUNT"), "{wrong}: {error}");
        }
        // Every station is one shard's, and the hash is the Kafka partitioner's.
        for by_plant in [false, true] {
            let shards: Vec<Shard> = (0..4).map(|i| shard(i, 4, by_plant)).collect();
            for station in ["CNC-01", "Press #2", "ST-00412", ""] {
                let owners = shards.iter().filter(|s| s.owns(station, "Plant #1"));
                assert_eq!(owners.count(), 1);
            }
        }
        assert!(shard(0, 1, true).owns("anything", "anywhere"));
        // By plant, a plant's stations share a shard; by station, they spread.
        let stations: Vec<String> = (0..40).map(|i| format!("ST-{i:03}")).collect();
        let owners = |by_plant| {
            let owner = |s: &String| (0..4).find(|&i| shard(i, 4, by_plant).owns(s, "LEEDS"));
            stations
                .iter()
                .map(owner)
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(owners(true).len(), 1);
        assert_eq!(owners(false).len(), 4);
    }
}
