//! `stationflow query "<SQL>" [--data <root>] [--format table|csv|json]`.

use crate::query::{self, OutputFormat};
use crate::store::{Root, StoreSettings};

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The SQL statement. Tables: station_windows, downtime_events; views:
    /// station_windows_latest, downtime_events_latest, window_sums and the oee_by_*
    /// roll-ups.
    pub sql: String,
    /// The output root a replay or the live engine wrote.
    #[arg(long, default_value = "./stationflow-out")]
    pub data: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Memory the query may hold (sorts and joins spill to disk first); past it, it fails.
    #[arg(long, default_value_t = query::DEFAULT_MEMORY_MB)]
    pub memory_limit_mb: usize,
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let root = Root::open_existing(&args.data, &StoreSettings::from_env()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let statement = query::planned(&root, &args.sql, args.memory_limit_mb << 20);
    let df = runtime.block_on(statement)?;
    if args.format != OutputFormat::Table {
        // Rows go out as they come: a large result never waits whole in memory.
        let out = super::RowsOut::default();
        return Ok(runtime.block_on(query::write_rows(df, args.format, out))?);
    }
    let batches = runtime
        .block_on(df.collect())
        .map_err(|e| anyhow::anyhow!(query::plainly(&e)))?;
    let mut text = query::render(&batches, args.format)?;
    text.push('\n');
    super::print(&text)
}
