//! `serve`'s settings: the defaults, then a TOML file (`--config`), then the flags. Unknown
//! keys in the file are errors naming the key.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::access::audit::DEFAULT_AUDIT_LOG;
use crate::access::keys::DEFAULT_KEY_FILE;
use crate::error::{bail, Context as _, Result};

/// The flags; each, where given, wins over the config file.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct ServeArgs {
    /// A TOML file of these settings (keys as the flags, with `_`: `pg_listen`,
    /// `tls_cert`, …); flags win over it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The output root to serve (a folder, file://, s3://bucket/prefix).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The key file (`stationflow keys`). [default: ./stationflow-keys.json]
    #[arg(long, env = "STATIONFLOW_KEYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<PathBuf>,
    /// The audit log every authentication and statement is appended to.
    /// [default: ./stationflow-audit.jsonl]
    #[arg(long = "audit-log", env = "STATIONFLOW_AUDIT_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    /// Where the PostgreSQL front listens; `off` for none; port 0: any free port,
    /// printed at start. [default: 127.0.0.1:5433]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_listen: Option<String>,
    /// Where the HTTP front listens; `off` for none. [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// The TLS certificate chain (PEM) of both fronts.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Listen beyond loopback without TLS: keys would cross the network in clear.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext: bool,
    /// A statement's time limit, seconds. [default: 60]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_timeout_s: Option<u64>,
    /// A statement's memory limit, MB. [default: 1024]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<usize>,
    /// An HTTP connection with no traffic for this long is closed, seconds (at least the
    /// statement timeout). [default: 120]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<u64>,
    /// Open connections at most, per front. [default: 512]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Anchor the audit log's head in the data root every this many lines (and at
    /// shutdown). [default: 100]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_every: Option<u64>,
}

/// The settings the server runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    pub data: String,
    pub keys: PathBuf,
    pub audit_log: PathBuf,
    pub pg_listen: String,
    pub http_listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plaintext: bool,
    pub statement_timeout_s: u64,
    pub memory_limit_mb: usize,
    pub idle_timeout_s: u64,
    pub max_connections: usize,
    pub anchor_every: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            data: "./stationflow-out".into(),
            keys: DEFAULT_KEY_FILE.into(),
            audit_log: DEFAULT_AUDIT_LOG.into(),
            pg_listen: "127.0.0.1:5433".into(),
            http_listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext: false,
            statement_timeout_s: 60,
            memory_limit_mb: 1024,
            idle_timeout_s: 120,
            max_connections: 512,
            anchor_every: 100,
        }
    }
}

impl ServeSettings {
    /// The defaults, then the file of `--config` (if any), then the flags given.
    pub fn load(args: &ServeArgs) -> Result<ServeSettings> {
        let mut figment = Figment::from(Serialized::defaults(ServeSettings::default()));
        if let Some(path) = &args.config {
            if !Path::new(path).is_file() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        figment
            .merge(Serialized::defaults(args))
            .extract()
            .context("serve settings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "pg_listen = \"0.0.0.0:6432\"\nhttp_listen = \"off\"\ntls_cert = \"c.pem\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            http_listen: Some("127.0.0.1:9000".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::load(&args).unwrap();
        assert_eq!(settings.pg_listen, "0.0.0.0:6432");
        assert_eq!(settings.http_listen, "127.0.0.1:9000");
        assert_eq!(settings.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(settings.statement_timeout_s, 60);

        std::fs::write(&file, "pg_lisen = \"x\"\n").unwrap();
        let wrong = ServeSettings::load(&ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(format!("{wrong:#}").contains("pg_lisen"), "{wrong:#}");
    }
}
