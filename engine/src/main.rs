//! `stationflow`: one-minute station windows — OEE, losses and their cost — from
//! shop-floor signals.

use clap::{Parser, Subcommand};
use stationflow_engine::commands;

/// mimalloc returns freed memory that glibc's per-thread arenas kept once the window
/// sums ran on threads of their own (docs/performance.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option, the sixteenth of its `mi_option_t` (the bindings
/// name no constant for it): how long freed pages wait before they go back to the OS,
/// a second by default and ten for its arenas.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the OS at once: peak RSS, what a container's limit counts, fell
/// by about a fifth on the realistic replay and by 58 MiB at a million stations, for a
/// few per cent of time (docs/performance.md, "Smaller snapshots, rings and station
/// state"). `MIMALLOC_PURGE_DELAY` still decides where it is set.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of the allocator's global options, which it reads when it
        // purges; no memory is touched.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

/// Lets the process open as many files as the system allows it: a replay over many plants
/// keeps a Parquet file per plant and day open, each spooled to a temporary file, and a
/// soft limit of 1,024 would make it finish files early (more, smaller files).
fn allow_many_open_files() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

#[derive(Parser)]
#[command(
    name = "stationflow",
    version,
    about = "Station windows (OEE, losses, cost) from shop-floor signals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay signal files into Parquet datasets (the embedded default: no broker, no server).
    Replay(commands::replay::ReplayArgs),
    /// Run SQL over the datasets.
    Query(commands::query::QueryArgs),
    /// Publish signal files to a Kafka topic, keyed by station, in event-time order.
    Publish(commands::publish::PublishArgs),
    /// The live engine: signals from Kafka to windows on Kafka and Parquet, checkpointed.
    Run(commands::run::RunArgs),
    /// Merge each partition's small files into few large ones; drop superseded revisions.
    Compact(commands::compact::CompactArgs),
    /// Delete a plant's rows (a station, a time range) from every dataset, with a report.
    Delete(commands::delete::DeleteArgs),
    /// Export a plant's latest windows to CSV or Parquet.
    Export(commands::export::ExportArgs),
    /// Print the live engine's effective settings (defaults, file, environment).
    ShowConfig(commands::show_config::ShowConfigArgs),
    /// Write a synthetic plant and its signals, for tests and benchmarks.
    Generate(commands::generate::GenerateArgs),
    /// Create, list and revoke the API keys a server lets in.
    Keys(commands::keys::KeysArgs),
    /// Check the audit log's hash chain and anchors.
    Audit(commands::audit::AuditCmdArgs),
    /// Serve SQL over the datasets to API-key holders, each seeing their plants only.
    Serve(stationflow_engine::serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    return_freed_memory_at_once();
    allow_many_open_files();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => commands::replay::run(args),
        Command::Query(args) => commands::query::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Compact(args) => commands::compact::run(args),
        Command::Delete(args) => commands::delete::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::ShowConfig(args) => commands::show_config::run(args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Audit(args) => commands::audit::run(args),
        Command::Serve(args) => stationflow_engine::serve::run(args).map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stationflow: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// The index names the purge delay: what it reads before it is set is that option's
    /// default (a second in mimalloc 3, ten milliseconds in 2), and no other option's.
    #[test]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads the allocator's global options.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(matches!(delay, 10 | 1000), "{delay}");
    }
}
