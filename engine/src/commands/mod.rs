//! The `stationflow` subcommands.

pub mod generate;
pub mod query;
pub mod replay;

use std::path::Path;

use anyhow::Context as _;
use stationflow_schemas::Context;

/// Reads and validates a context file (TOML, or JSON by extension).
pub fn load_context(path: &Path) -> anyhow::Result<Context> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading context file {}", path.display()))?;
    Ok(Context::from_str_named(&text, &path.display().to_string())?)
}
