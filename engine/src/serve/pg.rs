//! The PostgreSQL front of `serve`: psql, Grafana, Metabase, DBeaver and drivers connect
//! as to PostgreSQL. pgwire (through datafusion-postgres' re-export) speaks the protocol;
//! datafusion-postgres lends its SQL dialect fixes, `pg_catalog`, row encoders and its
//! `SET`/`SHOW`, transaction and cursor answers. What it does not have is ours: the user
//! is a key's name and the password the key (cleartext, over TLS where it leaves the
//! machine), one session per connection scoped to the key's plants, each statement
//! through the `gate` (key checked again, audit line first, read-only, limits), and
//! `SET` refused where it would change the engine.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchemaRef, ParamValues};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use serde_json::json;

use super::gate::{refusal_of, Caller, Gate, Refused, DATABASE};
use super::http::MAX_SQL_BYTES;
use super::ServeMetrics;
use crate::access::keys::{random_bytes, Principal};
use crate::query::read_only;

/// A parsed statement: its text, and the statement with its plan (`None`: empty).
pub type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// The PostgreSQL front, shared by every connection; what is a connection's own (who
/// signed in, their session) lives in its session extensions.
pub struct PgFront {
    core: Arc<Core>,
    /// Refuse connections that did not negotiate TLS.
    require_tls: bool,
}

/// What every connection's handlers share.
struct Core {
    gate: Arc<Gate>,
    metrics: Arc<ServeMetrics>,
}

/// One signed-in connection.
struct Signed {
    who: Principal,
    secret: String,
    ctx: SessionContext,
    caller: Caller,
    /// The columns of each open cursor, so a `FETCH` prepared by a driver describes its
    /// rows (psycopg's server-side cursors).
    cursors: std::sync::Mutex<HashMap<String, DFSchemaRef>>,
}

impl PgFront {
    pub fn new(gate: Arc<Gate>, metrics: Arc<ServeMetrics>, require_tls: bool) -> PgFront {
        PgFront {
            core: Arc::new(Core { gate, metrics }),
            require_tls,
        }
    }

    /// The handlers of one new connection.
    fn handler(&self) -> Handler {
        static NEXT_PID: AtomicI32 = AtomicI32::new(1);
        Handler {
            core: self.core.clone(),
            require_tls: self.require_tls,
            parser: Arc::new(Parser {
                sql: PostgresCompatibilityParser::new(),
                core: self.core.clone(),
            }),
            pid: NEXT_PID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl PgWireServerHandlers for PgFront {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.handler())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.handler())
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(self.handler())
    }
}

/// The handlers of one connection.
pub struct Handler {
    core: Arc<Core>,
    require_tls: bool,
    parser: Arc<Parser>,
    pid: i32,
}

fn error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_string(),
        code.to_string(),
        message.into(),
    )))
}

fn refused_error(refused: &Refused) -> PgWireError {
    // A key that no longer stands ends the connection.
    let severity = match refused {
        Refused::Key(_) => "FATAL",
        _ => "ERROR",
    };
    error(severity, refused.sqlstate(), refused.to_string())
}

fn caller_of<C: ClientInfo + ?Sized>(client: &C) -> Caller {
    Caller {
        from: client.socket_addr().to_string(),
        tool: client
            .metadata()
            .get("application_name")
            .map(|t| t.chars().take(200).collect())
            .unwrap_or_default(),
        protocol: "postgres",
    }
}

fn signed<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Signed>> {
    client
        .session_extensions()
        .get::<Signed>()
        .ok_or_else(|| error("FATAL", "28000", "the connection has not signed in"))
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.require_tls && !client.is_secure() {
                    self.core.metrics.auth_refused.add(1);
                    return Err(error(
                        "FATAL",
                        "28000",
                        "this server takes TLS connections only (sslmode=require)",
                    ));
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let secret = password.into_password()?.password;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let caller = caller_of(client);
                let who = match self
                    .core
                    .gate
                    .authenticate(&secret, Some(&user), &caller)
                    .await
                {
                    Ok(who) => who,
                    Err(refused) => {
                        self.core.metrics.auth_refused.add(1);
                        return Err(error(
                            "FATAL",
                            "28P01",
                            format!("password authentication failed for user {user:?}: {refused}"),
                        ));
                    }
                };
                let ctx = self
                    .core
                    .gate
                    .session(&who)
                    .await
                    .map_err(|r| refused_error(&r))?;
                setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
                    .map_err(|e| error("FATAL", "58000", e.to_string()))?;
                ctx.register_udf(session_user(&who.name));
                client.session_extensions().insert(Signed {
                    who,
                    secret,
                    ctx,
                    caller,
                    cursors: Default::default(),
                });
                let cancel_key =
                    random_bytes::<4>().map_err(|e| error("FATAL", "58000", e.to_string()))?;
                let secret_key = SecretKey::I32(i32::from_le_bytes(cancel_key));
                client.set_pid_and_secret_key(self.pid, secret_key);
                finish_authentication(client, &server_parameters()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `current_user` and `session_user` (the dialect parser maps the one to the other): the
/// key's name, where pg_catalog answers `postgres`.
fn session_user(name: &str) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    use datafusion::scalar::ScalarValue;
    let name = name.to_string();
    create_udf(
        "session_user",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name.clone()))))
        }),
    )
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.is_superuser = false;
    parameters.default_transaction_read_only = true;
    parameters
}

/// What the front does with a statement.
enum Route {
    /// `BEGIN`, `SET`, `SHOW`, cursors: answered by datafusion-postgres' hooks.
    Hooks,
    /// `DISCARD ALL` and harmless client `SET`s: acknowledged, nothing changes.
    Acknowledge(&'static str),
    /// Everything else: planned read-only.
    Read,
}

/// The client settings a `SET` may change for its own connection; `datafusion.*` and
/// other engine settings are refused.
const CLIENT_SETTINGS: [&str; 7] = [
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

fn route(statement: &Statement) -> Result<Route, Refused> {
    Ok(match statement {
        Statement::Set(Set::SingleAssignment { variable, .. }) => {
            let name = variable.to_string().to_lowercase();
            if name.contains('.') {
                return Err(Refused::NotReadOnly(format!(
                    "SET {name} would change the engine's settings"
                )));
            }
            if CLIENT_SETTINGS.contains(&name.as_str()) {
                Route::Hooks
            } else {
                Route::Acknowledge("SET")
            }
        }
        Statement::Set(Set::SetTimeZone { local: false, .. }) => Route::Hooks,
        Statement::Set(Set::SetNames { .. } | Set::SetNamesDefault {}) => Route::Acknowledge("SET"),
        Statement::Set(_) => {
            return Err(Refused::NotReadOnly(format!(
                "{statement} would change the session"
            )))
        }
        Statement::ShowVariable { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => Route::Hooks,
        Statement::Discard { .. } => Route::Acknowledge("DISCARD ALL"),
        // Drivers (psycopg) clean up their prepared statements so; a later Parse of the
        // same name replaces the statement anyway.
        Statement::Deallocate { .. } => Route::Acknowledge("DEALLOCATE"),
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => Route::Read,
        // Least privilege: whatever is not a read is refused before it is planned.
        _ => return Err(Refused::NotReadOnly(not_a_read(statement))),
    })
}

/// "COPY … is not a read", the statement cut short.
fn not_a_read(statement: &Statement) -> String {
    let text = statement.to_string();
    let cut: String = text.chars().take(60).collect();
    let ellipsis = if cut.len() < text.len() { "…" } else { "" };
    format!("{cut}{ellipsis} is not a read")
}

fn hooks() -> [Arc<dyn QueryHook>; 3] {
    [
        Arc::new(TransactionStatementHook),
        Arc::new(SetShowHook),
        Arc::new(CursorStatementHook),
    ]
}

/// The statement's time limit: the server's, or the client's `statement_timeout` where
/// that is shorter.
fn time_limit<C: ClientInfo + ?Sized>(gate: &Gate, client: &C) -> Duration {
    let server = gate.limits.statement_timeout;
    client
        .metadata()
        .get("statement_timeout_ms")
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis)
        .filter(|d| !d.is_zero())
        .map_or(server, |d| d.min(server))
}

impl Core {
    /// Checks the key again, writes the statement's first audit line, and brings the
    /// session up to the data as it is now (files that landed since `Parse` included:
    /// plans list their files when they run).
    async fn begin(&self, signed: &Signed, sql: &str) -> Result<Instant, Refused> {
        self.gate
            .recheck(&signed.secret, &signed.who, &signed.caller)
            .await?;
        let started = self.gate.begin(&signed.who, sql, &signed.caller).await?;
        self.gate.refresh(&signed.ctx).await?;
        Ok(started)
    }

    /// Logs a statement that ended before any row, and counts it.
    async fn failed(&self, signed: &Signed, refused: &Refused, started: Instant) {
        match refused {
            Refused::NotReadOnly(_) => self.metrics.statements_refused.add(1),
            Refused::Key(_) => self.metrics.auth_refused.add(1),
            _ => self.metrics.statements_failed.add(1),
        }
        let text = refused.to_string();
        self.gate
            .finish(&signed.who.name, &signed.caller, Err(&text), 0, started)
            .await;
    }

    /// A `DECLARE`'s query is planned read-only like any other, and its columns noted.
    async fn declare(&self, signed: &Signed, statement: &Statement) -> Result<(), Refused> {
        let Statement::Declare { stmts } = statement else {
            return Ok(());
        };
        for declare in stmts {
            let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                continue;
            };
            let plan = self.plan(signed, &Statement::Query(query.clone())).await?;
            let mut cursors = signed.cursors.lock().unwrap_or_else(|p| p.into_inner());
            cursors.insert(name.value.clone(), plan.schema().clone());
        }
        Ok(())
    }

    /// Plans `statement` read-only in the connection's session.
    async fn plan(&self, signed: &Signed, statement: &Statement) -> Result<LogicalPlan, Refused> {
        let state = signed.ctx.state();
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
            .await
            .map_err(refusal_of)?;
        read_only().verify_plan(&plan).map_err(refusal_of)?;
        Ok(plan)
    }

    /// Runs a planned read and answers with its rows as they come; the statement's end
    /// is logged when the last row is sent, it fails, or the client leaves.
    async fn rows<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        signed: &Arc<Signed>,
        plan: LogicalPlan,
        format: &Format,
        started: Instant,
    ) -> Result<QueryResponse, Refused> {
        let limit = time_limit(&self.gate, client);
        let deadline = started + limit;
        let ctx = &signed.ctx;
        let run = async {
            let df = ctx.execute_logical_plan(plan).await?;
            df.execute_stream().await
        };
        let stream = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refusal_of(e)),
            Err(_) => return Err(Refused::TimedOut),
        };
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = arrow_schema_to_pg_fields(&stream.schema(), format, Some(options))
            .map_err(|e| Refused::Sql(e.to_string()))?;
        let end = StatementEnd {
            gate: self.gate.clone(),
            metrics: self.metrics.clone(),
            signed: signed.clone(),
            started,
            rows: 0,
            outcome: None,
        };
        let fields = Arc::new(fields);
        let rows = row_stream(stream, fields.clone(), deadline, end);
        Ok(QueryResponse::new(fields, rows))
    }
}

impl Handler {
    /// One statement of the simple protocol.
    async fn simple<C>(
        &self,
        client: &mut C,
        signed: &Arc<Signed>,
        statement: Statement,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = statement.to_string();
        let started = self
            .core
            .begin(signed, &sql)
            .await
            .map_err(|r| refused_error(&r))?;
        let answer = match route(&statement) {
            Err(refused) => Err(refused),
            Ok(Route::Acknowledge(tag)) => Ok(Response::Execution(Tag::new(tag))),
            Ok(route) => {
                let mut hooked = None;
                if let Route::Hooks = route {
                    if let Err(refused) = self.core.declare(signed, &statement).await {
                        return self.core.answered(signed, Err(refused), started).await;
                    }
                    for hook in hooks() {
                        hooked = hook
                            .handle_simple_query(&statement, &signed.ctx, client)
                            .await;
                        if hooked.is_some() {
                            break;
                        }
                    }
                }
                match hooked {
                    Some(answer) => answer.map_err(|e| Refused::Sql(e.to_string())),
                    // No hook takes it: a read (`SHOW` of an engine setting, for one).
                    None => {
                        let format = &Format::UnifiedText;
                        self.core
                            .read(client, signed, &statement, format, started)
                            .await
                    }
                }
            }
        };
        self.core.answered(signed, answer, started).await
    }
}

impl Core {
    async fn read<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        signed: &Arc<Signed>,
        statement: &Statement,
        format: &Format,
        started: Instant,
    ) -> Result<Response, Refused> {
        let plan = self.plan(signed, statement).await?;
        let rows = self.rows(client, signed, plan, format, started).await?;
        Ok(Response::Query(rows))
    }

    /// Logs the end of what was answered at once (rows log their own end).
    async fn answered(
        &self,
        signed: &Signed,
        answer: Result<Response, Refused>,
        started: Instant,
    ) -> PgWireResult<Response> {
        match answer {
            Ok(Response::Query(rows)) => Ok(Response::Query(rows)),
            Ok(other) => {
                self.metrics.statements_ok.add(1);
                self.gate
                    .finish(&signed.who.name, &signed.caller, Ok(()), 0, started)
                    .await;
                Ok(other)
            }
            Err(refused) => {
                self.failed(signed, &refused, started).await;
                Err(refused_error(&refused))
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let signed = signed(client)?;
        if query.len() > MAX_SQL_BYTES {
            return Err(error(
                "ERROR",
                "54000",
                format!(
                    "the SQL text is {} bytes; at most {MAX_SQL_BYTES} are taken",
                    query.len()
                ),
            ));
        }
        let statements = self
            .parser
            .sql
            .parse(query)
            .map_err(|e| error("ERROR", "42601", e.to_string()))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            match self.simple(client, &signed, statement).await {
                Ok(response) => responses.push(response),
                // Later statements do not run, as in PostgreSQL.
                Err(e) if responses.is_empty() => return Err(e),
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// The extended protocol's parser: plans at `Parse`, so `Describe` knows the columns
/// and parameters; a statement that is not a read is refused there.
pub struct Parser {
    sql: PostgresCompatibilityParser,
    core: Arc<Core>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let signed = signed(client)?;
        if sql.len() > MAX_SQL_BYTES {
            return Err(error("ERROR", "54000", "the SQL text is too long"));
        }
        let mut statements = self
            .sql
            .parse(sql)
            .map_err(|e| error("ERROR", "42601", e.to_string()))?;
        if statements.len() > 1 {
            return Err(error(
                "ERROR",
                "42601",
                "a prepared statement holds one statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let text = statement.to_string();
        if let Statement::Fetch { name, .. } = &statement {
            let cursors = signed.cursors.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(schema) = cursors.get(&name.value) {
                let plan = empty_plan_of(schema.clone());
                return Ok(Some((text, Some((statement, plan)))));
            }
        }
        let plan = match route(&statement).map_err(|r| refused_error(&r))? {
            Route::Acknowledge(_) => empty_plan(),
            Route::Hooks => {
                let mut plan = None;
                for hook in hooks() {
                    if let Some(p) = hook
                        .handle_extended_parse_query(&statement, &signed.ctx, client)
                        .await
                    {
                        plan = Some(p?);
                        break;
                    }
                }
                match plan {
                    Some(plan) => plan,
                    None => self.core.parse_read(&signed, &statement).await?,
                }
            }
            Route::Read => self.core.parse_read(&signed, &statement).await?,
        };
        Ok(Some((text, Some((statement, plan)))))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match stmt {
            (_, Some((_, plan))) => parameter_types(plan)?
                .iter()
                .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match stmt {
            (_, Some((_, plan))) => arrow_schema_to_pg_fields(
                plan.schema().as_arrow(),
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            _ => Ok(Vec::new()),
        }
    }
}

impl Core {
    /// Plans a read at `Parse`; a refusal is logged like any statement's.
    async fn parse_read(
        &self,
        signed: &Signed,
        statement: &Statement,
    ) -> PgWireResult<LogicalPlan> {
        match self.plan(signed, statement).await {
            Ok(plan) => Ok(plan),
            Err(refused) => {
                let sql = statement.to_string();
                if let Ok(started) = self.gate.begin(&signed.who, &sql, &signed.caller).await {
                    self.failed(signed, &refused, started).await;
                }
                Err(refused_error(&refused))
            }
        }
    }
}

fn empty_plan() -> LogicalPlan {
    empty_plan_of(Arc::new(datafusion::common::DFSchema::empty()))
}

/// A plan of no rows with `schema`'s columns: what `Describe` reports.
fn empty_plan_of(schema: DFSchemaRef) -> LogicalPlan {
    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
        produce_one_row: false,
        schema,
    })
}

/// The types of `$1`, `$2`, … in order (`None` where the plan does not tell).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| error("ERROR", "42P18", e.to_string()))?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(id, t)| id.trim_start_matches('$').parse().ok().map(|n| (n, t)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    Ok(numbered.into_iter().map(|(_, t)| t).collect())
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// A cursor's portal (`DECLARE` stores it without a plan) describes its query's rows.
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let format = &portal.result_column_format;
        if portal.statement.statement.1.is_none() {
            let signed = signed(client)?;
            let cursors = signed.cursors.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(schema) = cursors.get(&portal.name) {
                let fields = arrow_schema_to_pg_fields(schema.as_arrow(), format, None)?;
                return Ok(DescribePortalResponse::new(fields));
            }
        }
        let fields = self
            .parser
            .get_result_schema(&portal.statement.statement, Some(format))?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let signed = signed(client)?;
        let (text, Some((statement, plan))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let types = parameter_types(plan)?;
        let wire: Vec<Option<Type>> = types
            .iter()
            .map(|t| t.as_ref().and_then(|t| into_pg_type(t).ok()))
            .collect();
        let type_refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let wire_refs: Vec<Option<&Type>> = wire.iter().map(Option::as_ref).collect();
        let params = deserialize_parameters_with_server_types(portal, &type_refs, &wire_refs)?;
        let logged = match &params {
            ParamValues::List(values) if !values.is_empty() => {
                let shown: Vec<String> = values.iter().map(|v| v.value.to_string()).collect();
                format!("{text} -- parameters: {}", json!(shown))
            }
            _ => text.clone(),
        };
        let started = self
            .core
            .begin(&signed, &logged)
            .await
            .map_err(|r| refused_error(&r))?;
        let answer = match route(statement) {
            Err(refused) => Err(refused),
            Ok(Route::Acknowledge(tag)) => Ok(Response::Execution(Tag::new(tag))),
            Ok(route) => {
                let mut hooked = None;
                if let Route::Hooks = route {
                    if let Err(refused) = self.core.declare(&signed, statement).await {
                        return self.core.answered(&signed, Err(refused), started).await;
                    }
                    for hook in hooks() {
                        hooked = hook
                            .handle_extended_query(statement, plan, &params, &signed.ctx, client)
                            .await;
                        if hooked.is_some() {
                            break;
                        }
                    }
                }
                match hooked {
                    Some(answer) => answer.map_err(|e| Refused::Sql(e.to_string())),
                    // No hook takes it: a read, planned at `Parse`.
                    None => {
                        self.core
                            .bound(client, &signed, plan, &params, portal, started)
                            .await
                    }
                }
            }
        };
        self.core.answered(&signed, answer, started).await
    }
}

impl Core {
    async fn bound<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        signed: &Arc<Signed>,
        plan: &LogicalPlan,
        params: &ParamValues,
        portal: &Portal<PgStatement>,
        started: Instant,
    ) -> Result<Response, Refused> {
        let plan = plan
            .clone()
            .replace_params_with_values(params)
            .map_err(refusal_of)?;
        read_only().verify_plan(&plan).map_err(refusal_of)?;
        let rows = self
            .rows(client, signed, plan, &portal.result_column_format, started)
            .await?;
        Ok(Response::Query(rows))
    }
}

/// Logs a statement's end once: when its rows are done, fail, or are dropped unread.
struct StatementEnd {
    gate: Arc<Gate>,
    metrics: Arc<ServeMetrics>,
    signed: Arc<Signed>,
    started: Instant,
    rows: u64,
    outcome: Option<Result<(), String>>,
}

impl Drop for StatementEnd {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err("the client went away".into()));
        match &outcome {
            Ok(()) => self.metrics.statements_ok.add(1),
            Err(_) => self.metrics.statements_failed.add(1),
        }
        self.metrics
            .statement_duration
            .record_ms(self.started.elapsed().as_millis() as u64);
        let (gate, signed, rows, started) = (
            self.gate.clone(),
            self.signed.clone(),
            self.rows,
            self.started,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let outcome = outcome.as_ref().map_err(String::as_str).copied();
                gate.finish(&signed.who.name, &signed.caller, outcome, rows, started)
                    .await;
            });
        }
    }
}

type Rows = Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync>;

/// The rows of `stream` as PostgreSQL data rows, until `deadline`.
fn row_stream(
    stream: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
    deadline: Instant,
    end: StatementEnd,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let state = (stream, None::<Rows>, Some(end));
    futures::stream::unfold(state, move |(mut stream, mut pending, mut end)| {
        let fields = fields.clone();
        async move {
            loop {
                let live = end.as_mut()?;
                if let Some(row) = pending.as_mut().and_then(Iterator::next) {
                    return Some((row, (stream, pending, end)));
                }
                let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
                let failure = match next {
                    Ok(Some(Ok(batch))) => {
                        live.rows += batch.num_rows() as u64;
                        pending = Some(encode_recordbatch(fields.clone(), batch));
                        continue;
                    }
                    Ok(None) => {
                        live.outcome = Some(Ok(()));
                        return None;
                    }
                    Ok(Some(Err(e))) => refusal_of(e),
                    Err(_) => Refused::TimedOut,
                };
                live.outcome = Some(Err(failure.to_string()));
                let _ = end.take();
                return Some((Err(refused_error(&failure)), (stream, None, None)));
            }
        }
    })
}
