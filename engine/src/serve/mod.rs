//! `stationflow serve`: governed SQL over the datasets (SPEC §7). Every statement passes
//! the `gate` (key, audit line, a session scoped to the caller's plants, read-only SQL,
//! time and memory limits); `http` is its HTTP front.

pub mod gate;
pub mod http;
pub mod idle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::access::audit::{AuditLog, DEFAULT_AUDIT_LOG};
use crate::access::keys::DEFAULT_KEY_FILE;
use crate::metrics::{histogram, Counter, Latency};
use crate::store::{Root, StoreSettings};
use gate::{Gate, Limits};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The output root to serve (a folder, file://, s3://bucket/prefix).
    #[arg(long, default_value = "./stationflow-out")]
    pub data: String,
    /// The key file (`stationflow keys`).
    #[arg(long, env = "STATIONFLOW_KEYS", default_value = DEFAULT_KEY_FILE)]
    pub keys: PathBuf,
    /// The audit log every authentication and statement is appended to.
    #[arg(long = "audit-log", env = "STATIONFLOW_AUDIT_LOG", default_value = DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,
    /// Where the HTTP front listens (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: String,
    /// Listen beyond loopback without TLS (which is not built yet): keys would cross the
    /// network in clear.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// A statement's time limit, seconds.
    #[arg(long, default_value_t = 60)]
    pub statement_timeout_s: u64,
    /// A statement's memory limit, MB.
    #[arg(long, default_value_t = 1024)]
    pub memory_limit_mb: usize,
    /// A connection with no traffic for this long is closed, seconds (at least the
    /// statement timeout).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout_s: u64,
}

/// The server's Prometheus metrics.
#[derive(Default)]
pub struct ServeMetrics {
    pub auth_refused: Counter,
    pub statements_ok: Counter,
    pub statements_failed: Counter,
    pub statements_refused: Counter,
    pub statement_duration: Latency,
}

impl ServeMetrics {
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (name, help, counter) in [
            (
                "serve_auth_refused_total",
                "Requests refused for their key",
                &self.auth_refused,
            ),
            (
                "serve_statements_ok_total",
                "Statements that ran to their end",
                &self.statements_ok,
            ),
            (
                "serve_statements_failed_total",
                "Statements that failed",
                &self.statements_failed,
            ),
            (
                "serve_statements_refused_total",
                "Statements refused as not read-only",
                &self.statements_refused,
            ),
        ] {
            let _ = writeln!(out, "# HELP stationflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE stationflow_{name} counter");
            let _ = writeln!(out, "stationflow_{name} {}", counter.get());
        }
        histogram(
            &mut out,
            "serve_statement_duration_seconds",
            "Time from a statement's arrival to its last row",
            &self.statement_duration,
        );
        out
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .http_listen
        .parse()
        .with_context(|| format!("--http-listen {:?} is not an address", args.http_listen))?;
    if !addr.ip().is_loopback() && !args.allow_plaintext {
        bail!(
            "--http-listen {addr} is beyond loopback and TLS is not built yet: API keys would \
             cross the network in clear (pass --allow-plaintext to accept that)"
        );
    }
    if args.idle_timeout_s < args.statement_timeout_s {
        // A statement computing before its first row moves nothing on the connection.
        bail!("--idle-timeout-s must be at least --statement-timeout-s");
    }
    let root = Root::open_existing(&args.data, &StoreSettings::from_env()?)?;
    let gate = Arc::new(Gate {
        root,
        keys: args.keys,
        audit: AuditLog::new(&args.audit_log),
        limits: Limits {
            statement_timeout: Duration::from_secs(args.statement_timeout_s),
            memory_bytes: args.memory_limit_mb << 20,
        },
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = idle::IdleListener {
            inner: tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
            idle: Duration::from_secs(args.idle_timeout_s.max(1)),
        };
        eprintln!(
            "stationflow serve: HTTP on http://{}",
            listener.inner.local_addr()?
        );
        let app = http::router(http::Http {
            gate,
            metrics: Arc::new(ServeMetrics::default()),
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<idle::Peer>(),
        )
        .await?;
        Ok(())
    })
}
