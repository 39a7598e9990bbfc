//! The HTTP front of `serve` (axum): `POST /api/v1/sql` with the SQL as the body and the
//! key in `X-API-Key` or `Authorization: Bearer`; the rows streamed as JSON (an array of
//! objects), CSV or an Arrow IPC stream, by `Accept`. `GET /healthz`, `GET /metrics`.
//! A statement that fails after its first rows were sent ends its body early: the
//! status was sent already.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde_json::json;

use super::gate::{Caller, Gate, Refused, Running};
use super::idle::Peer;
use super::ServeMetrics;
use crate::error::Result;
use crate::query::lists_as_text;

/// The largest SQL text taken, in bytes.
pub const MAX_SQL_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct Http {
    pub gate: Arc<Gate>,
    pub metrics: Arc<ServeMetrics>,
}

pub fn router(http: Http) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_SQL_BYTES))
        .with_state(http)
}

async fn metrics(State(http): State<Http>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    fn of(headers: &HeaderMap) -> Format {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("text/csv") {
            Format::Csv
        } else {
            Format::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

fn secret_of(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn sql(
    State(http): State<Http>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = Caller {
        from: peer.to_string(),
        tool: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
        protocol: "http",
    };
    let Some(secret) = secret_of(&headers) else {
        http.metrics.auth_refused.add(1);
        return error(
            StatusCode::UNAUTHORIZED,
            "28000",
            "give an API key in X-API-Key or Authorization: Bearer",
        );
    };
    let who = match http.gate.authenticate(secret, None, &caller).await {
        Ok(who) => who,
        Err(refused) => return refusal(&http, refused),
    };
    let Ok(sql) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "22021", "the SQL is not UTF-8");
    };
    let running = match http.gate.start(&who, sql, &caller).await {
        Ok(r) => r,
        Err(refused) => return refusal(&http, refused),
    };
    let format = Format::of(&headers);
    let body = stream_rows(http, running, caller, format);
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn refusal(http: &Http, refused: Refused) -> Response {
    let status = match &refused {
        Refused::Key(_) => {
            http.metrics.auth_refused.add(1);
            StatusCode::UNAUTHORIZED
        }
        Refused::NotReadOnly(_) => {
            http.metrics.statements_refused.add(1);
            StatusCode::FORBIDDEN
        }
        Refused::Sql(_) | Refused::TimedOut => {
            http.metrics.statements_failed.add(1);
            StatusCode::BAD_REQUEST
        }
        Refused::Server(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, refused.sqlstate(), &refused.to_string())
}

fn error(status: StatusCode, sqlstate: &str, message: &str) -> Response {
    let body = json!({"error": message, "sqlstate": sqlstate}).to_string() + "\n";
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The rows of `running`, encoded as they come, through a small channel (so a slow
/// client holds back the statement, not the server's memory); the statement's end is
/// logged when its last row is sent, or when it fails or runs out of time.
fn stream_rows(http: Http, running: Running, caller: Caller, format: Format) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let Running {
            mut stream,
            started,
            deadline,
            who,
            ..
        } = running;
        let mut encoder = Encoder::new(format, stream.schema());
        let mut rows = 0u64;
        let outcome: Result<(), String> = loop {
            let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
            let batch = match next {
                Err(_) => break Err(Refused::TimedOut.to_string()),
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err(e.to_string()),
                Ok(Some(Ok(batch))) => batch,
            };
            rows += batch.num_rows() as u64;
            match encoder.batch(&batch) {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => {
                    if tx.send(Ok(bytes.into())).await.is_err() {
                        break Err("the client went away".into());
                    }
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        match &outcome {
            Ok(()) => match encoder.finish() {
                Ok(bytes) => {
                    let _ = tx.send(Ok(bytes.into())).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                }
            },
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.clone()))).await;
            }
        }
        match &outcome {
            Ok(()) => http.metrics.statements_ok.add(1),
            Err(_) => http.metrics.statements_failed.add(1),
        }
        http.metrics
            .statement_duration
            .record_ms(started.elapsed().as_millis() as u64);
        let outcome = outcome.as_ref().map_err(String::as_str).copied();
        http.gate
            .finish(&who, &caller, outcome, rows, started)
            .await;
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Encodes batches into one of the formats, chunk by chunk.
enum Encoder {
    Json { first: bool },
    Csv { header: bool, schema: SchemaRef },
    Arrow(Box<arrow::ipc::writer::StreamWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(format: Format, schema: SchemaRef) -> Encoder {
        match format {
            Format::Json => Encoder::Json { first: true },
            Format::Csv => Encoder::Csv {
                header: true,
                schema,
            },
            Format::Arrow => match arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema) {
                Ok(w) => Encoder::Arrow(Box::new(w)),
                // A schema the IPC writer refuses: fall back to JSON rather than fail.
                Err(_) => Encoder::Json { first: true },
            },
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        Ok(match self {
            Encoder::Json { first } => {
                let mut lines = Vec::new();
                {
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut lines);
                    w.write(batch)?;
                    w.finish()?;
                }
                let mut out = Vec::with_capacity(lines.len() + 2);
                for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    out.push(if std::mem::take(first) { b'[' } else { b',' });
                    out.extend_from_slice(line);
                }
                out
            }
            Encoder::Csv { header, .. } => {
                let mut out = Vec::new();
                {
                    let mut w = arrow::csv::WriterBuilder::new()
                        .with_header(std::mem::take(header))
                        .build(&mut out);
                    w.write(&lists_as_text(batch)?)?;
                }
                out
            }
            Encoder::Arrow(w) => {
                w.write(batch)?;
                std::mem::take(w.get_mut())
            }
        })
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(match self {
            Encoder::Json { first: true } => b"[]\n".to_vec(),
            Encoder::Json { first: false } => b"]\n".to_vec(),
            // No rows: the header alone.
            Encoder::Csv {
                header: true,
                schema,
            } => {
                let empty = RecordBatch::new_empty(schema.clone());
                let mut out = Vec::new();
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out)
                    .write(&lists_as_text(&empty)?)?;
                out
            }
            Encoder::Csv { .. } => Vec::new(),
            Encoder::Arrow(w) => {
                w.finish()?;
                std::mem::take(w.get_mut())
            }
        })
    }
}
