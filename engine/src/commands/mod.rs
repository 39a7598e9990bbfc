//! The `stationflow` subcommands.

pub mod generate;
pub mod publish;
pub mod query;
pub mod replay;
pub mod run;
pub mod show_config;

use std::path::Path;

use anyhow::Context as _;
use stationflow_schemas::Context;

/// Reads and validates a context file (TOML, or JSON by extension).
pub fn load_context(path: &Path) -> anyhow::Result<Context> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading context file {}", path.display()))?;
    Ok(Context::from_str_named(&text, &path.display().to_string())?)
}

/// Writes to stdout; a closed pipe (`stationflow query … | head`) ends the command
/// quietly instead of panicking as `println!` would.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}
