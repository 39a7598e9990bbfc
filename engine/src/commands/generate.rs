//! `stationflow generate --stations N --records M [--seed S] [--out <dir>]`: a synthetic
//! plant of the shapes the sample has, as `<dir>/context.toml` (or `.json`) and
//! `<dir>/signals.jsonl`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use stationflow_operators::synthetic;
use stationflow_schemas::signal::{Reading, SignalRecord};
use stationflow_schemas::time::format_ms;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 100)]
    pub stations: usize,
    /// Plants the stations are spread over: London, Chicago, then more in other time
    /// zones; station `i` is in plant `i % plants` (a company-sized set: hundreds).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=999))]
    pub plants: u32,
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Milliseconds between two records of one station.
    #[arg(long, default_value_t = 1_000)]
    pub interval_ms: i64,
    /// Seconds between two records of one station drawn anew for each, `MIN-MAX` (a
    /// discrete station completing a unit every 20–60 s: `20-60`); instead of
    /// `--interval-ms`.
    #[arg(long, value_parser = seconds_range, conflicts_with = "interval_ms")]
    pub cycle_s: Option<(i64, i64)>,
    #[arg(long, default_value = "./stationflow-generated")]
    pub out: PathBuf,
    /// Records a device holds back and sends later (a DAU buffering through a network
    /// outage), in percent: each arrives `--late-by-s` after its time, so the windows it
    /// falls in are revised.
    #[arg(long, default_value_t = 0.0)]
    pub late_percent: f64,
    #[arg(long, default_value_t = 600)]
    pub late_by_s: i64,
    /// `context.toml`, or `context.json`: a large plant's context loads from JSON in
    /// a fraction of the memory (a million stations' TOML takes gigabytes to parse).
    #[arg(long, value_enum, default_value_t = ContextFormat::Toml)]
    pub context_format: ContextFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContextFormat {
    Toml,
    Json,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let context = synthetic::plants(args.stations, args.plants as usize);
    let (name, text) = match args.context_format {
        ContextFormat::Toml => ("context.toml", toml::to_string(&context)?),
        ContextFormat::Json => ("context.json", serde_json::to_string_pretty(&context)?),
    };
    std::fs::write(args.out.join(name), text).with_context(|| format!("writing {name}"))?;
    let path = args.out.join("signals.jsonl");
    let mut out = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut line = String::with_capacity(256);
    let pace = match args.cycle_s {
        Some((least, most)) => synthetic::Pace::Between(least * 1000, most * 1000),
        None => synthetic::Pace::Every(args.interval_ms),
    };
    let signals = synthetic::paced(args.stations, args.records, pace, args.seed);
    let late = Late {
        share: args.late_percent / 100.0,
        by_ms: args.late_by_s * 1000,
        rng: synthetic::Rng::new(args.seed ^ 0x5eed),
        held: std::collections::VecDeque::new(),
    };
    for r in late.delay(signals) {
        line.clear();
        line.push_str("{\"station\":\"");
        line.push_str(&r.station);
        line.push_str("\",\"ts\":\"");
        line.push_str(&format_ms(r.ts));
        line.push_str("\",\"seq\":");
        line.push_str(&r.seq.unwrap_or_default().to_string());
        for reading in &r.readings {
            line.push_str(&encode(reading));
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    println!(
        "wrote {} records for {} stations to {}",
        args.records,
        args.stations,
        args.out.display()
    );
    Ok(())
}

/// `MIN-MAX` (or one number) seconds, at least 1.
fn seconds_range(text: &str) -> Result<(i64, i64), String> {
    let (least, most) = text.split_once('-').unwrap_or((text, text));
    let number = |t: &str| {
        t.trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| format!("{text:?}: give seconds as MIN-MAX, e.g. 20-60"))
    };
    let (least, most) = (number(least)?, number(most)?);
    if least > most {
        return Err(format!("{text:?}: MIN is above MAX"));
    }
    Ok((least, most))
}

/// Holds back a share of the records and lets each go once the file has come `by_ms` of
/// event time past it.
struct Late {
    share: f64,
    by_ms: i64,
    rng: synthetic::Rng,
    held: std::collections::VecDeque<SignalRecord>,
}

impl Late {
    fn delay(
        mut self,
        records: impl Iterator<Item = SignalRecord>,
    ) -> impl Iterator<Item = SignalRecord> {
        let mut records = records.peekable();
        std::iter::from_fn(move || loop {
            let due = self.held.front().is_some_and(|h| {
                records
                    .peek()
                    .is_none_or(|next| next.ts >= h.ts + self.by_ms)
            });
            if due {
                return self.held.pop_front();
            }
            let next = records.next()?;
            if self.share > 0.0 && self.rng.unit() < self.share {
                self.held.push_back(next);
            } else {
                return Some(next);
            }
        })
    }
}

/// One reading as `,"key":value`, in the DAU's own style (`productive` as 0/1, no fault
/// as `""`, numbers as Rust prints them).
fn encode(r: &Reading) -> String {
    let value = match r {
        Reading::Productive(b) => (*b as u8).to_string(),
        Reading::ErrorCode(None) => "\"\"".into(),
        Reading::ErrorCode(Some(c)) => serde_json::Value::from(c.as_ref()).to_string(),
        number => number.quantity().unwrap_or_default().to_string(),
    };
    format!(",\"{}\":{value}", r.key())
}
