//! `stationflow delete --plant P [--station S] [--from T1 --to T2] --actor NAME
//! [--data <root>] [--dry-run]`: secure deletion with a confirmation report
//! (`datasets::delete`).

use serde_json::json;

use super::audit::{os_user, AuditArgs};
use crate::datasets::delete::{delete, render, write_report, Criteria};
use crate::store::{Root, StoreSettings};

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The plant whose rows go.
    #[arg(long)]
    pub plant: String,
    /// Only this station's rows.
    #[arg(long)]
    pub station: Option<String>,
    /// Rows whose window (or downtime span) starts at or after this instant: RFC 3339
    /// (2026-03-04T06:00:00Z) or a UTC day (2026-03-04).
    #[arg(long)]
    pub from: Option<String>,
    /// ... and before this instant (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Who asked for the deletion, for the report.
    #[arg(long)]
    pub actor: String,
    /// The output root (a folder, file://, s3://bucket/prefix).
    #[arg(long, default_value = "./stationflow-out")]
    pub data: String,
    /// List what would go; change nothing, write no report.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub audit: AuditArgs,
}

pub fn run(args: DeleteArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.actor.trim().is_empty(),
        "--actor must name who asked for the deletion"
    );
    let criteria = Criteria {
        plant: args.plant.clone(),
        station: args.station.clone(),
        from_ms: args
            .from
            .as_deref()
            .map(|t| super::parse_instant(t, "--from"))
            .transpose()?,
        to_ms: args
            .to
            .as_deref()
            .map(|t| super::parse_instant(t, "--to"))
            .transpose()?,
    };
    if let (Some(from), Some(to)) = (criteria.from_ms, criteria.to_ms) {
        anyhow::ensure!(from < to, "--from must be before --to");
    }
    let root = Root::open_existing(&args.data, &StoreSettings::from_env()?)?;
    let runtime = super::runtime()?;
    let asked = json!({"actor": args.actor, "os_user": os_user(), "data": args.data,
        "plant": args.plant, "station": args.station, "from": args.from, "to": args.to});
    if !args.dry_run {
        // Logged before anything goes: no log, no deletion.
        args.audit.record(
            &root,
            &runtime,
            "delete",
            json!({"status": "started", "asked": asked}),
        )?;
    }
    let report = runtime.block_on(delete(&root, &criteria, &args.actor, args.dry_run))?;
    let mut text = render(&report);
    if !args.dry_run {
        let [json, txt] = runtime.block_on(write_report(&root, &report))?;
        text.push_str(&format!("report      {json}\n            {txt}\n"));
        let done = json!({"status": if report.verified { "done" } else { "rows left" },
            "asked": asked, "report": json});
        args.audit.record(&root, &runtime, "delete", done)?;
    }
    super::print(&text)?;
    anyhow::ensure!(
        args.dry_run || report.verified,
        "the verification found matching rows left: see the report"
    );
    Ok(())
}
