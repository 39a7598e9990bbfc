//! The `stationflow` subcommands.

pub mod audit;
pub mod compact;
pub mod delete;
pub mod export;
pub mod generate;
pub mod keys;
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
    let mut out = RowsOut::default();
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// Standard output, buffered; when its reader goes away (`stationflow query … | head`),
/// the process ends there, successfully.
pub struct RowsOut(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Default for RowsOut {
    fn default() -> Self {
        RowsOut(std::io::BufWriter::new(std::io::stdout().lock()))
    }
}

impl RowsOut {
    fn or_exit<T>(result: std::io::Result<T>) -> std::io::Result<T> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            other => other,
        }
    }
}

impl std::io::Write for RowsOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::or_exit(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::or_exit(self.0.flush())
    }
}

/// The commands' async runtime: one worker (the I/O waits; the work is on the caller).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// An instant given on the command line: RFC 3339, or a UTC day (its midnight); ms.
pub fn parse_instant(text: &str, flag: &str) -> anyhow::Result<i64> {
    if let Some(ms) = stationflow_schemas::time::parse_rfc3339_ms(text) {
        return Ok(ms);
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis())
        .map_err(|_| {
            anyhow::anyhow!("{flag} {text:?}: give an RFC 3339 instant (2026-03-04T06:00:00Z) or a day (2026-03-04)")
        })
}

/// A UTC day given on the command line, checked and normalised to YYYY-MM-DD.
pub fn parse_day(text: &str, flag: &str) -> anyhow::Result<String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.to_string())
        .map_err(|_| anyhow::anyhow!("{flag} {text:?}: give a day as YYYY-MM-DD"))
}
