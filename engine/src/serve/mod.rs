//! `stationflow serve`: governed SQL over the datasets (SPEC §7). Every statement passes
//! the `gate` (key, audit line, a session scoped to the caller's plants, read-only SQL,
//! time and memory limits); `pg` is its PostgreSQL front and `http` its HTTP front, both
//! over TLS (`tls`) where they leave the machine.

pub mod gate;
pub mod http;
pub mod idle;
pub mod pg;
pub mod settings;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion_postgres::pgwire;

use crate::access::audit::AuditLog;
use crate::error::{bail, Context as _, Result};
use crate::metrics::{histogram, Counter, Latency};
use crate::store::{Root, StoreSettings};
use gate::{Gate, Limits};
pub use settings::{ServeArgs, ServeSettings};

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

/// Where a front listens, and whether it takes TLS; `None` when switched off.
fn front(
    what: &str,
    addr: &str,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    allow_plaintext: bool,
) -> Result<Option<SocketAddr>> {
    if addr.is_empty() || addr == "off" {
        return Ok(None);
    }
    let parsed: SocketAddr = addr
        .parse()
        .with_context(|| format!("{what} listen address {addr:?} is not an address"))?;
    if !parsed.ip().is_loopback() && tls.is_none() && !allow_plaintext {
        bail!(
            "{what} would listen on {parsed}, beyond loopback, without TLS: API keys would \
             cross the network in clear. Give tls_cert and tls_key, or allow_plaintext = true"
        );
    }
    Ok(Some(parsed))
}

pub fn run(args: ServeArgs) -> Result<()> {
    let settings = ServeSettings::load(&args)?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => bail!("TLS needs both tls_cert and tls_key"),
    };
    let pg_addr = front(
        "PostgreSQL",
        &settings.pg_listen,
        tls.as_ref(),
        settings.allow_plaintext,
    )?;
    let http_addr = front(
        "HTTP",
        &settings.http_listen,
        tls.as_ref(),
        settings.allow_plaintext,
    )?;
    if pg_addr.is_none() && http_addr.is_none() {
        bail!("both fronts are off: give pg_listen or http_listen");
    }
    if settings.idle_timeout_s < settings.statement_timeout_s {
        // A statement computing before its first row moves nothing on the connection.
        bail!("idle_timeout_s must be at least statement_timeout_s");
    }
    let root = Root::open_existing(&settings.data, &StoreSettings::from_env()?)?;
    let gate = Arc::new(Gate::new(
        root,
        settings.keys.clone(),
        AuditLog::new(&settings.audit_log),
        Limits {
            statement_timeout: Duration::from_secs(settings.statement_timeout_s),
            memory_bytes: settings.memory_limit_mb << 20,
        },
        settings.anchor_every,
    ));
    let metrics = Arc::new(ServeMetrics::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let scheme = if tls.is_some() { "s" } else { "" };
        if let Some(addr) = pg_addr {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let sslmode = if tls.is_some() {
                "?sslmode=require"
            } else {
                ""
            };
            eprintln!(
                "stationflow serve: PostgreSQL on postgres://{}/{}{sslmode}",
                tcp.local_addr()?,
                gate::DATABASE
            );
            let front = Arc::new(pg::PgFront::new(
                gate.clone(),
                metrics.clone(),
                tls.is_some(),
            ));
            tokio::spawn(serve_pg(tcp, tls.clone(), front, settings.max_connections));
        }
        if let Some(addr) = http_addr {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            eprintln!(
                "stationflow serve: HTTP on http{scheme}://{}",
                tcp.local_addr()?
            );
            let listener = idle::IdleListener::new(
                tcp,
                tls.clone(),
                Duration::from_secs(settings.idle_timeout_s.max(1)),
                settings.max_connections,
            )?;
            let app = http::router(http::Http {
                gate: gate.clone(),
                metrics: metrics.clone(),
            });
            tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<idle::Peer>(),
                )
                .await;
                if let Err(e) = served {
                    tracing::error!(%e, "the HTTP front stopped");
                }
            });
        }
        shutdown_signal().await;
        match gate.close_and_anchor().await {
            Ok(Some(head)) => {
                eprintln!("stationflow serve: audit log anchored at line {}", head.seq)
            }
            Ok(None) => {}
            Err(e) => eprintln!("stationflow serve: the audit log's head was not anchored: {e:#}"),
        }
        Ok(())
    })
}

/// Accepts PostgreSQL connections, each on a task of its own, at most `max` at once; one
/// over the limit is told so and closed.
async fn serve_pg(
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    front: Arc<pg::PgFront>,
    max: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    loop {
        let (socket, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(%e, "accepting a PostgreSQL connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max, "a PostgreSQL connection over the limit was closed");
            drop(socket);
            continue;
        };
        let (tls, front) = (tls.clone(), front.clone());
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, front).await {
                tracing::debug!(%e, %peer, "a PostgreSQL connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
