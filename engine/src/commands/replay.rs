//! `stationflow replay <files or dirs> --context <file> [--out <root>]`: the embedded
//! default. History in, Parquet datasets and dead letters out, then a summary.

use std::io::IsTerminal;
use std::path::PathBuf;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stationflow_operators::FlowConfig;
use stationflow_schemas::time::parse_rfc3339_ms;

use crate::driver::replay::{self, ReplayConfig, ReplayReport, Shard};
use crate::query;
use crate::sinks::parquet::ParquetSinkConfig;
use crate::sources::files::FilesConfig;
use crate::store::{Root, StoreSettings};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Signal files or folders (.jsonl, .jsonl.gz, .csv, .csv.gz, .parquet), read in order.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Context file (TOML or JSON): plants, stations, shifts, SKUs, schedules.
    #[arg(long)]
    pub context: PathBuf,
    /// Output root: a local folder (created if missing), file://, or memory:// (kept only
    /// while the command runs: the summary is computed from it, nothing is saved).
    #[arg(long, default_value = "./stationflow-out")]
    pub out: String,
    /// Records older than a station's watermark by more than this are too late.
    #[arg(long, default_value_t = DEFAULTS.allowed_lateness_ms / 1000)]
    pub allowed_lateness_s: i64,
    /// A station's watermark trails its largest ts by this much.
    #[arg(long, default_value_t = DEFAULTS.out_of_orderness_ms / 1000)]
    pub out_of_orderness_s: i64,
    /// A station quiet for this long (in event time) has its windows emitted.
    #[arg(long, default_value_t = DEFAULTS.idle_timeout_ms / 1000)]
    pub idle_timeout_s: i64,
    /// Records further than this ahead of the wall clock are dead-lettered as future_ts:
    /// history cannot come from the future.
    #[arg(long, default_value_t = DEFAULTS.max_clock_skew_ms.unwrap_or(0) / 1000)]
    pub max_clock_skew_s: i64,
    /// Records before this instant (RFC 3339) are dead-lettered as bad_ts (a device whose
    /// clock was lost reports 1970 or 2000). A station whose first version in the context
    /// has a later valid_from is bounded by that instead.
    #[arg(long, default_value = "2010-01-01T00:00:00Z", value_parser = rfc3339_ms)]
    pub earliest_ts: i64,
    /// Threads the stations are refreshed on, each writing Parquet files of its own
    /// (default: every core). The output is the same whatever the number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replay only the stations of shard INDEX of COUNT (by a stable hash of the
    /// station's code), replacing only that shard's files under --out: COUNT replays,
    /// one per INDEX, on as many machines, write one root between them.
    #[arg(long, value_name = "INDEX/COUNT", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// With --shard: split by a stable hash of each station's plant instead, so that a
    /// plant's stations, and its folders of files, are one shard's.
    #[arg(long, requires = "shard")]
    pub plants: bool,
    /// No progress bar and no summary table (the summary line still prints).
    #[arg(long)]
    pub quiet: bool,
}

/// The event-time defaults: the operators' own, which `run`'s `default.toml` repeats (a
/// test holds the two together).
const DEFAULTS: FlowConfig = FlowConfig::DEFAULT;

/// The event-time settings the flags give.
fn flow_config(args: &ReplayArgs) -> FlowConfig {
    FlowConfig {
        out_of_orderness_ms: args.out_of_orderness_s * 1000,
        allowed_lateness_ms: args.allowed_lateness_s * 1000,
        idle_timeout_ms: args.idle_timeout_s * 1000,
        max_clock_skew_ms: Some(args.max_clock_skew_s * 1000),
        earliest_ts_ms: args.earliest_ts,
        ..FlowConfig::default()
    }
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let context = super::load_context(&args.context)?;
    let root = Root::open(&args.out, &StoreSettings::from_env()?)?;
    let runtime = super::runtime()?;
    let progress = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template(
            "{spinner} {human_pos} records  {per_sec}  {elapsed}  {msg}",
        )?);
        bar
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let config = ReplayConfig {
        flow: flow_config(&args),
        source: FilesConfig {
            inputs: args.inputs,
        },
        context,
        // Windows and events on every thread.
        sink: ParquetSinkConfig::for_writers(2 * threads),
        batch_records: 8192,
        threads,
        shard: (args.shard).map(|shard| Shard {
            by_plant: args.plants,
            ..shard
        }),
    };
    let report = replay::run(config, &root, runtime.handle(), &progress)?;
    progress.finish_and_clear();
    super::print(&report_text(&report, &args.out))?;
    if !args.quiet {
        let stations = runtime.block_on(summed_stations(&root))?;
        let batches = runtime.block_on(query::run(&root, &summary_sql(stations)))?;
        let mut table = query::render(&batches, query::OutputFormat::Table)?;
        if stations > SUMMARY_STATIONS {
            table.push_str(&format!(
                "\nthe {SUMMARY_STATIONS} of {stations} stations with the lowest OEE; every station \
                 by day: stationflow query --data {} \"SELECT * FROM oee_by_station_day\"",
                args.out
            ));
        }
        super::print(&format!("{table}\n"))?;
    }
    Ok(())
}

/// Stations the summary lists one by one; a larger plant's lists the lowest OEE.
const SUMMARY_STATIONS: u64 = 25;

/// How many stations have sums.
async fn summed_stations(root: &Root) -> anyhow::Result<u64> {
    let sql = "SELECT COUNT(DISTINCT station) AS n FROM window_sums";
    let batches = query::run(root, sql).await?;
    let count = (batches.first())
        .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>())
        .and_then(|c| (!c.is_empty()).then(|| c.value(0)))
        .unwrap_or(0);
    Ok(count.max(0) as u64)
}

fn rfc3339_ms(text: &str) -> Result<i64, String> {
    parse_rfc3339_ms(text).ok_or_else(|| format!("{text:?} is not an RFC 3339 time with an offset"))
}

/// The per-station summary, from the same sums and ratios as the roll-up views: every
/// station of a plant of a few, by name; of a larger one, those with the lowest OEE (a
/// million rows help nobody at a terminal).
fn summary_sql(stations: u64) -> String {
    let order = if stations > SUMMARY_STATIONS {
        format!("ORDER BY oee ASC NULLS LAST, station LIMIT {SUMMARY_STATIONS}")
    } else {
        "ORDER BY station".to_string()
    };
    format!(
        "SELECT station,
            ROUND(planned_s / 3600, 2) AS planned_h, ROUND(run_s / 3600, 2) AS run_h,
            ROUND(availability, 3) AS a, ROUND(performance, 3) AS p, ROUND(quality, 3) AS q,
            ROUND(oee, 3) AS oee, ROUND(loss_cost, 2) AS loss_cost, currency
        FROM (SELECT station, {} FROM window_sums GROUP BY station)
        {order}",
        query::sums_measures()
    )
}

fn report_text(r: &ReplayReport, out: &str) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let c = &r.counters;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        text,
        "replayed {} records from {} files ({:.1} MB) in {:.2} s: {:.0} records/s",
        c.records_in,
        r.files,
        r.bytes_read as f64 / 1e6,
        secs,
        c.records_in as f64 / secs
    );
    let _ = writeln!(
        text,
        "applied {}, duplicates {}, debounced completions {}, late records {}, unknown signal keys {}",
        c.applied, c.duplicates, r.debounced, c.late_records, c.unknown_keys
    );
    if r.other_shards > 0 {
        let _ = writeln!(text, "left to the other shards {}", r.other_shards);
    }
    let dead: Vec<String> = r
        .dead_letters
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let total: u64 = r.dead_letters.values().sum();
    let _ = writeln!(
        text,
        "dead letters {total}{}",
        if dead.is_empty() {
            String::new()
        } else {
            format!(" ({})", dead.join(", "))
        }
    );
    let _ = writeln!(
        text,
        "windows {} rows ({} revisions) in {} files, downtime events {} rows in {} files, sums of {} days, under {out}",
        r.windows.rows, c.revisions_emitted, r.windows.files, r.events.rows, r.events.files, r.summed_days
    );
    if let Some(kb) = peak_rss_kb() {
        let _ = writeln!(text, "peak memory (RSS) {:.1} MiB", kb as f64 / 1024.0);
    }
    text
}

/// The process's peak resident set (Linux `VmHWM`), in KiB (`/proc` says "kB").
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        replay: ReplayArgs,
    }

    /// Replay without flags windows as the operators' defaults say.
    #[test]
    fn the_flags_default_to_the_operators_defaults() {
        let cli = Cli::parse_from(["replay", "signals.jsonl", "--context", "plant.toml"]);
        assert_eq!(flow_config(&cli.replay), FlowConfig::DEFAULT);
    }
}
