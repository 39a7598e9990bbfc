//! The replay driver: every input file, merged in event-time order → decode →
//! `StationFlow` (with "now" the largest event time seen) → windows and events to Parquet,
//! rejections to dead letters. Watermarks advance every `batch_records` records; the
//! records admitted since the last advance go into their stations just before it,
//! station by station. Each advance refreshes the stations in `threads` runs of
//! neighbours, each on its own thread and into its own Parquet writers. The end of input
//! closes every window up to the last record's minute.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::ProgressBar;
use object_store::{ObjectStore, ObjectStoreExt};
use stationflow_operators::station::Emitted;
use stationflow_operators::{Counters, FlowConfig, StationFlow};
use stationflow_schemas::time::format_ms;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};
use stationflow_schemas::{Context, RejectReason};

use super::wall_ms;
use crate::datasets::sums::{self, CLASSES, SUMS};
use crate::sinks::dead_letter::DeadLetterSink;
use crate::sinks::parquet::{DatasetRow, DatasetWriter, FileNames, ParquetSinkConfig, SinkStats};
use crate::sources::files;
use crate::sources::merge::MergedFiles;
use crate::store::Root;

pub struct ReplayConfig {
    pub inputs: Vec<PathBuf>,
    pub context: Context,
    pub flow: FlowConfig,
    pub sink: ParquetSinkConfig,
    /// Records between watermark advances.
    pub batch_records: usize,
    /// Threads an advance refreshes the stations on, each writing files of its own.
    pub threads: usize,
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
    pub elapsed: Duration,
}

/// Removes what an earlier replay wrote under `root` (replay owns its output datasets).
pub fn clear_outputs(root: &Root, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
    runtime.block_on(async {
        for name in [
            "station_windows",
            "downtime_events",
            SUMS,
            CLASSES,
            "dead_letter.jsonl",
        ] {
            let prefix = root.child(name);
            let mut listing = root.store.list(Some(&prefix));
            let mut paths = Vec::new();
            while let Some(meta) = listing.next().await {
                paths.push(meta?.location);
            }
            for p in paths {
                root.store.delete(&p).await?;
            }
        }
        Ok::<_, object_store::Error>(())
    })?;
    Ok(())
}

/// Windows a run of stations may hold in an advance before they go to its writers
/// (about 30 MB of rows). An advance emits about one window a station, so only a jump of
/// the watermarks over hours or days (a shutdown in the history) reaches it.
const DRAIN_ROWS: usize = 65_536;

fn writer<R: DatasetRow>(
    root: &Root,
    runtime: &tokio::runtime::Handle,
    config: &ReplayConfig,
    names: FileNames,
) -> DatasetWriter<R> {
    let (store, prefix) = (root.store.clone(), root.prefix.clone());
    DatasetWriter::new(store, prefix, runtime.clone(), config.sink.clone()).named(names)
}

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
        let names = match config.threads {
            0 | 1 => FileNames::PerRun,
            _ => FileNames::PerThread(run),
        };
        RunWriters {
            windows: writer(root, runtime, config, names),
            events: writer(root, runtime, config, names),
        }
    }

    /// Hands a run's rows to the writers, and shows on the progress bar how far in event
    /// time the windows have come (records stand still while an advance walks a long
    /// jump, a day of windows at a time).
    fn write(&mut self, rows: &mut Emitted, progress: &ProgressBar) -> anyhow::Result<()> {
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
) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let mut inputs = MergedFiles::new(files::discover(&config.inputs)?)?;
    clear_outputs(root, runtime)?;
    let runs = config.threads.max(1);
    let mut writers: Vec<RunWriters> = (0..runs)
        .map(|run| RunWriters::new(root, runtime, &config, run))
        .collect();
    let mut flow = StationFlow::new(config.context, config.flow);
    flow.set_wall_clock(wall_ms());
    let mut dead = DeadLetterSink::new()?;
    let mut now = i64::MIN;
    let mut n = 0usize;
    // Records admitted since the last advance, inserted station by station before it.
    let mut admitted = Vec::with_capacity(config.batch_records);
    let write = |run: &mut RunWriters, rows: &mut Emitted| run.write(rows, progress);
    while let Some((item, original)) = inputs.next_item()? {
        let rejected = match item.decoded() {
            Ok(record) => {
                // A rejected record (from the future, say) must not become "now".
                let at = now.max(record.ts);
                match flow.admit_into(record, at, &mut admitted) {
                    Ok(()) => {
                        now = at;
                        None
                    }
                    Err(reason) => Some((reason, StationFlow::rejection_detail(reason).into())),
                }
            }
            Err(rejection) => {
                flow.counters_mut().count_rejected(rejection.reason);
                Some((rejection.reason, rejection.detail.clone()))
            }
        };
        if let Some((reason, detail)) = rejected {
            dead.write(reason, &item.position, &detail, original)?;
        }
        n += 1;
        if n.is_multiple_of(config.batch_records) {
            flow.set_wall_clock(wall_ms());
            flow.insert_grouped(&mut admitted);
            flow.advance_into(now, DRAIN_ROWS, &mut writers, write)?;
            progress.inc(config.batch_records as u64);
        }
    }
    flow.insert_grouped(&mut admitted);
    if now > i64::MIN {
        flow.advance_into(now, DRAIN_ROWS, &mut writers, write)?;
        flow.finish_into(now, DRAIN_ROWS, &mut writers, write)?;
    }
    progress.set_position(n as u64);
    let (mut windows, mut events) = (SinkStats::default(), SinkStats::default());
    for run in writers {
        windows.add(&run.windows.close()?);
        events.add(&run.events.close()?);
    }
    let by_reason = dead.by_reason.clone();
    dead.close(&root.store, &root.prefix, runtime)?;
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
        elapsed: started.elapsed(),
    })
}
