//! What every statement passes through, whatever the protocol: the key checked against
//! the key file as it is now (so a revoked or expired key stops at its next statement),
//! the audit line written before anything runs (no line, no statement), a fresh session
//! scoped to the caller's plants (seeing files as they land) with a memory pool, and
//! read-only planning.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::{json, Value};

use crate::access::audit::{AuditLog, Head};
use crate::access::keys::{KeyFile, Principal, Refusal};
use crate::error::{format_err, Error, Result};
use crate::query::{read_only, register_all, register_store, runtime_env};
use crate::store::Root;

/// The catalog (PostgreSQL: the database) every session names its tables in.
pub const DATABASE: &str = "stationflow";

/// Limits of one statement.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub statement_timeout: Duration,
    pub memory_bytes: usize,
}

/// Who is calling and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub from: String,
    /// The client's own name for itself (User-Agent, application_name).
    pub tool: String,
    pub protocol: &'static str,
}

/// Why a statement did not run.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Key(#[from] Refusal),
    /// DDL, DML, `COPY`, `SET` and the like: SQLSTATE 42501.
    #[error("statements are read-only: {0}")]
    NotReadOnly(String),
    /// The SQL does not plan (a syntax error, an unknown column): SQLSTATE 42601 or 42P01.
    #[error("{0}")]
    Sql(String),
    /// Past the statement's time limit: SQLSTATE 57014.
    #[error("the statement ran past its time limit")]
    TimedOut,
    /// The audit log could not be written, or the data not reached.
    #[error("{0:#}")]
    Server(Error),
}

impl Refused {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Refused::Key(_) => "28P01",
            Refused::NotReadOnly(_) => "42501",
            Refused::Sql(_) => "42601",
            Refused::TimedOut => "57014",
            Refused::Server(_) => "58000",
        }
    }
}

pub struct Gate {
    pub root: Root,
    pub keys: PathBuf,
    pub audit: AuditLog,
    pub limits: Limits,
    /// The log's head is anchored in the data root every this many lines.
    pub anchor_every: u64,
    anchors: Mutex<Anchors>,
    /// Whether lines may still be written: false once the server closes its log, so
    /// that the head anchored at shutdown is the last line.
    open: tokio::sync::RwLock<bool>,
}

/// The last head this server wrote, and the last it anchored.
#[derive(Default)]
struct Anchors {
    latest: Option<Head>,
    anchored_seq: u64,
}

/// A statement that passed the gate: its rows, and how to log its end.
pub struct Running {
    pub stream: SendableRecordBatchStream,
    pub started: Instant,
    pub deadline: Instant,
    pub who: String,
    pub sql: String,
}

impl Gate {
    pub fn new(
        root: Root,
        keys: PathBuf,
        audit: AuditLog,
        limits: Limits,
        anchor_every: u64,
    ) -> Gate {
        Gate {
            root,
            keys,
            audit,
            limits,
            anchor_every: anchor_every.max(1),
            anchors: Mutex::new(Anchors::default()),
            open: tokio::sync::RwLock::new(true),
        }
    }

    /// At shutdown: waits for the lines being written, writes no more (what would need
    /// one is refused), and anchors the last head this server wrote if it is not yet.
    pub async fn close_and_anchor(&self) -> Result<Option<Head>> {
        *self.open.write().await = false;
        let head = {
            let mut anchors = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
            match anchors.latest.clone() {
                Some(head) if head.seq > anchors.anchored_seq => {
                    anchors.anchored_seq = head.seq;
                    head
                }
                _ => return Ok(None),
            }
        };
        AuditLog::anchor(&self.root, &head).await?;
        Ok(Some(head))
    }

    /// Notes a new head; every `anchor_every` lines it is anchored, in the background.
    fn appended(&self, head: Head) {
        let due = {
            let mut anchors = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
            let due = head.seq >= anchors.anchored_seq + self.anchor_every;
            if due {
                anchors.anchored_seq = head.seq;
            }
            anchors.latest = Some(head.clone());
            due
        };
        if due {
            let root = self.root.clone();
            tokio::spawn(async move {
                if let Err(e) = AuditLog::anchor(&root, &head).await {
                    tracing::error!(error = %format!("{e:#}"), seq = head.seq, "the audit log's head was not anchored");
                }
            });
        }
    }

    /// What the key file, read now, says of `secret` presented by `user`.
    async fn check_key(
        &self,
        secret: &str,
        user: Option<String>,
    ) -> Result<Result<Principal, Refusal>, Refused> {
        let (keys, secret) = (self.keys.clone(), secret.to_string());
        tokio::task::spawn_blocking(move || {
            KeyFile::load(&keys).map(|k| k.authenticate(&secret, user.as_deref(), Utc::now()))
        })
        .await
        .map_err(|e| Refused::Server(e.into()))?
        .map_err(Refused::Server)
    }

    /// The principal `secret` stands for now; every attempt is logged.
    pub async fn authenticate(
        self: &Arc<Self>,
        secret: &str,
        user: Option<&str>,
        caller: &Caller,
    ) -> Result<Principal, Refused> {
        let presented = user.map(str::to_string);
        let checked = self.check_key(secret, presented.clone()).await?;
        let (status, who) = match &checked {
            Ok(p) => ("ok".to_string(), json!(p.name)),
            Err(r) => (format!("refused: {r}"), Value::Null),
        };
        self.log(
            "auth",
            json!({"status": status, "who": who, "user": presented}),
            caller,
        )
        .await?;
        Ok(checked?)
    }

    /// Checks again, without a line in the log unless refused, that the key `who` signed
    /// in with still stands: a revoked or expired key stops at its next statement.
    pub async fn recheck(
        self: &Arc<Self>,
        secret: &str,
        who: &Principal,
        caller: &Caller,
    ) -> Result<(), Refused> {
        let checked = self.check_key(secret, Some(who.name.clone())).await?;
        if let Err(r) = &checked {
            self.log(
                "auth",
                json!({"status": format!("refused: {r}"), "who": who.name, "user": who.name}),
                caller,
            )
            .await?;
        }
        checked.map(|_| ()).map_err(Refused::Key)
    }

    /// A session of `who`'s plants with the statement limits: its memory pool, no cache
    /// of file listings (files show as they land), `information_schema`, every table and
    /// view.
    pub async fn session(&self, who: &Principal) -> Result<SessionContext, Refused> {
        let runtime = runtime_env(self.limits.memory_bytes).map_err(Refused::Server)?;
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(DATABASE, "public");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let scope = who.plant_scope().map(|p| Arc::from(p.to_vec()));
        register_all(ctx, &self.root, scope)
            .await
            .map_err(Refused::Server)
    }

    /// Brings `ctx` up to the data as it is now (new commits of the live engine; new files
    /// of a replay or compaction are listed at each scan anyway).
    pub async fn refresh(&self, ctx: &SessionContext) -> Result<(), Refused> {
        register_store(ctx, &self.root)
            .await
            .map_err(Refused::Server)
    }

    /// Logs that `who` sent `sql`: before it runs, and if the line cannot be written it
    /// does not run.
    pub async fn begin(
        self: &Arc<Self>,
        who: &Principal,
        sql: &str,
        caller: &Caller,
    ) -> Result<Instant, Refused> {
        let started = Instant::now();
        self.log(
            "statement",
            json!({"status": "started", "who": who.name, "sql": sql}),
            caller,
        )
        .await?;
        Ok(started)
    }

    /// Logs the statement, then plans it read-only in a fresh session of `who`'s plants.
    pub async fn start(
        self: &Arc<Self>,
        who: &Principal,
        sql: &str,
        caller: &Caller,
    ) -> Result<Running, Refused> {
        let started = self.begin(who, sql, caller).await?;
        let ctx = self.session(who).await?;
        let planned = async {
            let df = ctx.sql_with_options(sql, read_only()).await?;
            df.execute_stream().await
        };
        let stream = match tokio::time::timeout(self.limits.statement_timeout, planned).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let refused = refusal_of(e);
                self.finish(&who.name, caller, Err(&refused.to_string()), 0, started)
                    .await;
                return Err(refused);
            }
            Err(_) => {
                let refused = Refused::TimedOut;
                self.finish(&who.name, caller, Err(&refused.to_string()), 0, started)
                    .await;
                return Err(refused);
            }
        };
        Ok(Running {
            stream,
            started,
            deadline: started + self.limits.statement_timeout,
            who: who.name.clone(),
            sql: sql.to_string(),
        })
    }

    /// Logs how a statement ended (best effort: it ran already).
    pub async fn finish(
        self: &Arc<Self>,
        who: &str,
        caller: &Caller,
        outcome: Result<(), &str>,
        rows: u64,
        started: Instant,
    ) {
        let status = match outcome {
            Ok(()) => "done".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let fields = json!({"status": status, "who": who, "rows": rows,
            "duration_ms": started.elapsed().as_millis() as u64});
        if let Err(e) = self.log("statement", fields, caller).await {
            tracing::error!(%e, "the end of a statement was not logged");
        }
    }

    async fn log(
        self: &Arc<Self>,
        kind: &str,
        mut fields: Value,
        caller: &Caller,
    ) -> Result<(), Refused> {
        fields["from"] = json!(caller.from);
        fields["tool"] = json!(caller.tool);
        fields["protocol"] = json!(caller.protocol);
        let open = self.open.read().await;
        if !*open {
            return Err(Refused::Server(format_err!(
                "the server is stopping: nothing more is logged"
            )));
        }
        let gate = self.clone();
        let kind = kind.to_string();
        let head = tokio::task::spawn_blocking(move || gate.audit.append(&kind, fields))
            .await
            .map_err(|e| Refused::Server(e.into()))?
            .map_err(|e| Refused::Server(e.context("the audit log could not be written")))?;
        self.appended(head);
        Ok(())
    }
}

/// A planning error as the caller should see it.
pub fn refusal_of(e: DataFusionError) -> Refused {
    let text = crate::query::plainly(&e);
    match e {
        DataFusionError::Plan(m) if m.contains("not supported") => Refused::NotReadOnly(text),
        DataFusionError::ResourcesExhausted(_) => Refused::Sql(format!(
            "the statement needs more memory than allowed: {text}"
        )),
        _ => Refused::Sql(text),
    }
}
