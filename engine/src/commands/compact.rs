//! `stationflow compact [--data <root>] [--before <date>]`: merges each partition's small
//! files into few large ones and drops superseded revisions (`datasets::compact`).

use serde_json::json;

use super::audit::{os_user, AuditArgs};
use crate::datasets::compact::{compact, Compacted};
use crate::datasets::sums;
use crate::store::{Root, StoreSettings};

#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// The output root (a folder, file://, s3://bucket/prefix).
    #[arg(long, default_value = "./stationflow-out")]
    pub data: String,
    /// Compact partitions dated (UTC) before this day, YYYY-MM-DD. Default: before
    /// yesterday, so partitions a live engine may still revise are left alone; pass a
    /// later date for replayed history.
    #[arg(long)]
    pub before: Option<String>,
    /// Rows per merged file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows_per_file: usize,
    #[command(flatten)]
    pub audit: AuditArgs,
}

pub fn run(args: CompactArgs) -> anyhow::Result<()> {
    let before = match args.before {
        Some(day) => super::parse_day(&day, "--before")?,
        None => (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string(),
    };
    let root = Root::open_existing(&args.data, &StoreSettings::from_env()?)?;
    let runtime = super::runtime()?;
    let asked = json!({"os_user": os_user(), "data": args.data, "before": before});
    args.audit.record(
        &root,
        &runtime,
        "compact",
        json!({"status": "started", "asked": asked}),
    )?;
    let done = runtime.block_on(compact(&root, Some(&before), args.rows_per_file))?;
    // Sums of every day whose windows changed since they were computed (compacted here,
    // or written by a live engine): the roll-up views read them instead of windows.
    let summed = runtime.block_on(sums::refresh(&root))?;
    let partitions: Vec<String> = done
        .iter()
        .map(|c| format!("{}/plant={}/date={}", c.dataset, c.plant, c.date))
        .collect();
    let summed_days: Vec<&str> = summed.iter().map(|s| s.date.as_str()).collect();
    let result = json!({"status": "done", "asked": asked, "partitions": partitions, "summed_days": summed_days});
    args.audit.record(&root, &runtime, "compact", result)?;
    super::print(&summary(&done, &before))?;
    if !summed.is_empty() {
        super::print(&format!("window sums computed for {} days\n", summed.len()))?;
    }
    Ok(())
}

fn summary(done: &[Compacted], before: &str) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    if done.is_empty() {
        let _ = writeln!(t, "nothing to compact before {before}");
        return t;
    }
    let mb = |b: u64| b as f64 / 1e6;
    for c in done {
        let _ = writeln!(
            t,
            "{}/plant={}/date={}: {} files → {}, {} rows → {}, {:.2} MB → {:.2} MB",
            c.dataset,
            c.plant,
            c.date,
            c.files_before,
            c.files_after,
            c.rows_before,
            c.rows_after,
            mb(c.bytes_before),
            mb(c.bytes_after)
        );
    }
    let sum = |f: fn(&Compacted) -> u64| done.iter().map(f).sum::<u64>();
    let _ = writeln!(
        t,
        "compacted {} partitions before {before}: {} files → {}, {} rows → {}, {:.2} MB → {:.2} MB",
        done.len(),
        sum(|c| c.files_before as u64),
        sum(|c| c.files_after as u64),
        sum(|c| c.rows_before as u64),
        sum(|c| c.rows_after as u64),
        mb(sum(|c| c.bytes_before)),
        mb(sum(|c| c.bytes_after))
    );
    t
}
