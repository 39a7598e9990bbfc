//! `stationflow show-config [--config <file>]`: the live engine's effective settings —
//! embedded defaults, then the file, then `STATIONFLOW__SECTION__KEY` variables — as TOML,
//! or the error that `run` would stop with.

use std::path::PathBuf;

use crate::config::LiveConfig;

#[derive(Debug, clap::Args)]
pub struct ShowConfigArgs {
    /// Settings file (TOML); only what differs from the defaults is needed.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the documented defaults file instead.
    #[arg(long)]
    pub defaults: bool,
}

pub fn run(args: ShowConfigArgs) -> anyhow::Result<()> {
    if args.defaults {
        return super::print(crate::config::DEFAULT_TOML);
    }
    let config = LiveConfig::load(args.config.as_deref())?;
    super::print(&config.to_toml())
}
