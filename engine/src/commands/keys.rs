//! `stationflow keys create|list|revoke [--keys <file>]`: the API keys that `serve` lets
//! in (`access::keys`). A new key's secret is printed once, alone on standard output;
//! everything else goes to standard error.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use serde_json::{json, Value};

use super::audit::os_user;
use crate::access::audit::{AuditLog, DEFAULT_AUDIT_LOG};
use crate::access::keys::{parse_duration, KeyFile, Role, DEFAULT_KEY_FILE};

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    /// The key file.
    #[arg(long, global = true, env = "STATIONFLOW_KEYS", default_value = DEFAULT_KEY_FILE)]
    pub keys: PathBuf,
    /// The audit log a key's creation or revocation is recorded in, before it is saved.
    #[arg(long = "audit-log", global = true, env = "STATIONFLOW_AUDIT_LOG", default_value = DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown this once only).
    Create {
        /// The key's name: the PostgreSQL user it signs in as.
        #[arg(long)]
        name: String,
        /// `member` reads its plants only; `admin` reads every plant.
        #[arg(long, value_enum)]
        role: Role,
        /// A member's plants, comma-separated.
        #[arg(long, value_delimiter = ',')]
        plants: Vec<String>,
        /// How long the key lives: 90d, 12h, 30m (members must have one).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key: open connections are refused at their next statement.
    Revoke {
        /// The key's name.
        name: String,
    },
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let mut file = KeyFile::load(&args.keys)?;
    let now = Utc::now();
    match args.command {
        KeysCommand::Create {
            name,
            role,
            plants,
            expires_in,
        } => {
            let plants: Vec<String> = plants
                .iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            let expires_at = expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| now + d);
            let secret = file.create(&name, role, &plants, expires_at, now)?;
            record(
                &args.audit_log,
                json!({"action": "create", "name": name, "role": role.as_str(),
                    "plants": plants, "expires_at": expires_at, "key_file": args.keys}),
            )?;
            file.save()?;
            eprintln!(
                "created key {name:?} in {}; its secret, below, is shown this once only",
                args.keys.display()
            );
            super::print(&format!("{secret}\n"))
        }
        KeysCommand::List => super::print(&listing(&file, now)),
        KeysCommand::Revoke { name } => {
            file.revoke(&name, now)?;
            record(
                &args.audit_log,
                json!({"action": "revoke", "name": name, "key_file": args.keys}),
            )?;
            file.save()?;
            eprintln!("revoked key {name:?}");
            Ok(())
        }
    }
}

/// A key change in the audit log, before the key file is saved: no line, no change. (Its
/// head is anchored by the next command or server that holds the data root.)
fn record(log: &Path, mut fields: Value) -> anyhow::Result<()> {
    fields["who"] = os_user();
    AuditLog::new(log)
        .append("key", fields)
        .context("recording the key change in the audit log")?;
    Ok(())
}

/// One line a key: name, role, plants, created, expires, and whether it is usable now.
fn listing(file: &KeyFile, now: chrono::DateTime<Utc>) -> String {
    let mut out = String::from("name\trole\tplants\tcreated\texpires\tstatus\n");
    for key in file.keys() {
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if key.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        let day = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
        out += &format!(
            "{}\t{}\t{}\t{}\t{}\t{status}\n",
            key.name,
            key.role.as_str(),
            if key.plants.is_empty() {
                "*".to_string()
            } else {
                key.plants.join(",")
            },
            day(key.created_at),
            key.expires_at.map_or("never".into(), day),
        );
    }
    out
}
