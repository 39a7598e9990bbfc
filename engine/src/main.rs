//! `stationflow`: one-minute station windows — OEE, losses and their cost — from
//! shop-floor signals.

use clap::{Parser, Subcommand};
use stationflow_engine::commands;

/// mimalloc returns freed memory that glibc's per-thread arenas kept once the window
/// sums ran on threads of their own (docs/performance.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
