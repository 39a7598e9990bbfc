//! `stationflow audit verify [--log <path>] [--data <root>]`: checks the audit log's hash
//! chain and, with `--data`, the anchors under that root (`access::audit`); names the
//! first bad line. `AuditArgs` is the `--audit-log` flag of the commands that write it.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::access::audit::{verify, AuditLog, DEFAULT_AUDIT_LOG};
use crate::store::{Root, StoreSettings};

/// Where a command records what it did.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The audit log (JSON lines, hash-chained) this command appends to.
    #[arg(long = "audit-log", env = "STATIONFLOW_AUDIT_LOG", default_value = DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,
}

impl AuditArgs {
    /// Appends `kind` with `fields` and anchors the new head under `root`. Called before
    /// a change (a failure to log stops it) and after.
    pub fn record(
        &self,
        root: &Root,
        runtime: &tokio::runtime::Runtime,
        kind: &str,
        fields: Value,
    ) -> anyhow::Result<()> {
        let head = AuditLog::new(&self.audit_log).append(kind, fields)?;
        // The line is what must exist; an anchor missed now is made by a later one.
        if let Err(e) = runtime.block_on(AuditLog::anchor(root, &head)) {
            eprintln!("stationflow: warning: the audit log's head was not anchored: {e:#}");
        }
        Ok(())
    }
}

/// The actor of a command-line change: the operating-system user.
pub fn os_user() -> Value {
    json!(std::env::var("USER").unwrap_or_default())
}

#[derive(Debug, clap::Args)]
pub struct AuditCmdArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and the anchors; name the first bad line.
    Verify {
        /// The audit log.
        #[arg(long, env = "STATIONFLOW_AUDIT_LOG", default_value = DEFAULT_AUDIT_LOG)]
        log: PathBuf,
        /// The data root whose anchors to check (a folder, file://, s3://bucket/prefix).
        #[arg(long)]
        data: Option<String>,
    },
}

pub fn run(args: AuditCmdArgs) -> anyhow::Result<()> {
    let AuditCommand::Verify { log, data } = args.command;
    let root = data
        .as_deref()
        .map(|d| Root::open_existing(d, &StoreSettings::from_env()?))
        .transpose()?;
    let runtime = super::runtime()?;
    match runtime.block_on(verify(&log, root.as_ref()))? {
        Ok(head) => super::print(&format!(
            "audit log {} holds: {} lines, head {}{}\n",
            log.display(),
            head.seq,
            head.hash,
            if root.is_some() {
                ", anchors match"
            } else {
                ""
            }
        )),
        Err(bad) => anyhow::bail!("{}: {bad}", log.display()),
    }
}
