//! The engine's error, `Error`: what the engine was doing when it failed and the cause,
//! told apart by the variant the failing library gave: whose it is to fix (`Domain`)
//! and whether trying again may succeed (`retry`). The upload queue retries only what
//! may succeed, and stops saying so, once, on what will not; the Kafka sink
//! dead-letters a record the broker refuses for what it is (`refused_for_itself`).
//!
//! Library modules return `Result<T>` (this module's); `Context` adds what was being
//! done (`.context(…)`, `.with_context(|| …)`), keeping the class of the cause. `bail!`, `ensure!` and `format_err!`
//! make the engine's own failures, the user's to fix unless made with
//! `Error::internal`. The commands print an error as one line, each part once.

use std::fmt;

use datafusion::error::DataFusionError;
use object_store::Error as StoreError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

/// Whose a failure is to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The user's setup or data: credentials, a bucket or topic that is not there, a
    /// setting, a record too large.
    User,
    /// Something outside the engine, for a while: a store or broker unreachable,
    /// throttling, a server error.
    External,
    /// The engine itself asked something wrong: a bug.
    Internal,
}

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub domain: Domain,
    /// Whether the same request may succeed later unchanged.
    pub retry: bool,
}

impl Class {
    pub(crate) const USER: Class = Class {
        domain: Domain::User,
        retry: false,
    };
    pub(crate) const OUTAGE: Class = Class {
        domain: Domain::External,
        retry: true,
    };
    pub(crate) const BUG: Class = Class {
        domain: Domain::Internal,
        retry: false,
    };
}

/// An error the engine can classify.
pub trait Classify {
    fn class(&self) -> Class;
}

impl Classify for StoreError {
    /// The store's client has retried timeouts, dropped connections and server errors
    /// already; what reaches here as `Generic` is one of those that outlasted its retries
    /// (or a request it could not send), which a later try may get through.
    fn class(&self) -> Class {
        match self {
            // Wrong or revoked keys, or a policy that does not allow the request.
            StoreError::PermissionDenied { .. } | StoreError::Unauthenticated { .. } => Class::USER,
            // The engine reads what it lists and writes whole objects: a 404 on a put
            // is the bucket.
            StoreError::NotFound { .. } | StoreError::UnknownConfigurationKey { .. } => Class::USER,
            StoreError::Generic { .. } => Class::OUTAGE,
            // The engine makes no conditional requests and names its own paths.
            StoreError::InvalidPath { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::Precondition { .. }
            | StoreError::NotModified { .. }
            | StoreError::NotSupported { .. }
            | StoreError::NotImplemented { .. }
            | StoreError::JoinError { .. } => Class::BUG,
            // Variants a later object_store adds: tried again, as before it had them.
            _ => Class::OUTAGE,
        }
    }
}

impl Classify for KafkaError {
    fn class(&self) -> Class {
        match self {
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => Class::USER,
            // librdkafka's own queue: it drains as the broker acknowledges.
            KafkaError::MessageProduction(Code::QueueFull) => Class::OUTAGE,
            _ => self.rdkafka_error_code().map_or(Class::OUTAGE, code_class),
        }
    }
}

/// Whether the producer refused a record for what it is (too large, invalid), not for the
/// state of the broker or the setup: sending it again fails again, and only it. The Kafka
/// sink dead-letters such a record rather than stop.
pub fn refused_for_itself(e: &KafkaError) -> bool {
    matches!(e, KafkaError::MessageProduction(code) if about_the_record(*code))
}

fn about_the_record(code: Code) -> bool {
    matches!(
        code,
        Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::InvalidMessage
            | Code::InvalidRecord
    )
}

/// What a broker's (or librdkafka's) error code says.
fn code_class(code: Code) -> Class {
    match code {
        // The record itself: sending it again fails again.
        code if about_the_record(code) => Class::USER,
        // The setup: topics, credentials, permissions.
        Code::UnknownTopicOrPartition
        | Code::UnknownTopic
        | Code::TopicAuthorizationFailed
        | Code::GroupAuthorizationFailed
        | Code::ClusterAuthorizationFailed
        | Code::TransactionalIdAuthorizationFailed
        | Code::SaslAuthenticationFailed
        | Code::Authentication
        | Code::InvalidConfig
        | Code::InvalidRequiredAcks => Class::USER,
        // Another producer took over, or the engine's idempotence broke: a bug or a
        // second engine with the same identity, not something to wait out.
        Code::ProducerFenced | Code::InvalidProducerEpoch | Code::OutOfOrderSequenceNumber => {
            Class::BUG
        }
        _ => Class::OUTAGE,
    }
}

/// An engine failure: what the engine was doing, outermost first, and the cause.
pub struct Error {
    /// What the engine was doing, innermost first (as the contexts were added).
    doing: Vec<String>,
    cause: Cause,
}

enum Cause {
    Store(StoreError),
    Kafka(KafkaError),
    /// Another library's error, classed when it became an `Error`.
    Library {
        source: Box<dyn std::error::Error + Send + Sync>,
        class: Class,
    },
    /// The engine's own words.
    Message {
        text: String,
        class: Class,
    },
}

/// The engine's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure the user's setup or data must fix: a setting, an input, a name.
    pub fn user(text: impl Into<String>) -> Error {
        Error::message(text, Class::USER)
    }

    /// A failure of the engine itself: a bug.
    pub fn internal(text: impl Into<String>) -> Error {
        Error::message(text, Class::BUG)
    }

    /// A failure of something outside the engine, for a while: trying again may work.
    pub fn outage(text: impl Into<String>) -> Error {
        Error::message(text, Class::OUTAGE)
    }

    /// A failure in the engine's words, of a class the caller knows.
    pub fn classed(text: impl Into<String>, class: Class) -> Error {
        Error::message(text, class)
    }

    fn message(text: impl Into<String>, class: Class) -> Error {
        Error::from_cause(Cause::Message {
            text: text.into(),
            class,
        })
    }

    /// Another library's error, with the class the caller knows it has.
    pub fn library(source: impl std::error::Error + Send + Sync + 'static, class: Class) -> Error {
        Error::from_cause(Cause::Library {
            source: Box::new(source),
            class,
        })
    }

    fn from_cause(cause: Cause) -> Error {
        Error {
            doing: Vec::new(),
            cause,
        }
    }

    /// What kind of failure this is.
    pub fn class(&self) -> Class {
        match &self.cause {
            Cause::Store(e) => e.class(),
            Cause::Kafka(e) => e.class(),
            Cause::Library { class, .. } | Cause::Message { class, .. } => *class,
        }
    }

    /// The error with what the engine was doing when it failed.
    pub fn context(mut self, doing: impl fmt::Display) -> Error {
        self.doing.push(doing.to_string());
        self
    }

    /// The object store's error, when that is the cause.
    pub fn store_error(&self) -> Option<&StoreError> {
        match &self.cause {
            Cause::Store(e) => Some(e),
            _ => None,
        }
    }

    /// The cause, when it is another library's error of type `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match &self.cause {
            Cause::Store(e) => (e as &dyn std::error::Error).downcast_ref(),
            Cause::Kafka(e) => (e as &dyn std::error::Error).downcast_ref(),
            Cause::Library { source, .. } => source.downcast_ref(),
            Cause::Message { .. } => None,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Store(e) => write!(f, "{e}"),
            Cause::Kafka(e) => write!(f, "{e}"),
            Cause::Library { source, .. } => write!(f, "{source}"),
            Cause::Message { text, .. } => f.write_str(text),
        }
    }
}

/// One line: what the engine was doing, outermost first, then the cause.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for doing in self.doing.iter().rev() {
            write!(f, "{doing}: ")?;
        }
        write!(f, "{}", self.cause)
    }
}

/// As `Display`: a test's `unwrap` shows what failed, not the struct.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// No `source`: the message already holds the cause, and a chain printed by the
/// commands would repeat it.
impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::from_cause(Cause::Store(e))
    }
}

impl From<KafkaError> for Error {
    fn from(e: KafkaError) -> Error {
        Error::from_cause(Cause::Kafka(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let class = io_class(e.kind());
        Error::library(e, class)
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Error {
        match e {
            DataFusionError::ObjectStore(e) => Error::from(*e),
            e => {
                let class = query_class(&e);
                Error::library(e, class)
            }
        }
    }
}

impl From<stationflow_schemas::reader::SourceError> for Error {
    /// The input files: missing, unreadable or not in a format read.
    fn from(e: stationflow_schemas::reader::SourceError) -> Error {
        use stationflow_schemas::reader::SourceError as E;
        let class = match &e {
            E::Io { error, .. } => io_class(error.kind()),
            E::Missing(_) | E::Empty(_) | E::Format { .. } => Class::USER,
        };
        Error::library(e, class)
    }
}

impl From<tempfile::PersistError> for Error {
    fn from(e: tempfile::PersistError) -> Error {
        Error::from(e.error)
    }
}

/// A listener that would not bind (`tiny_http`): the address is the user's.
impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
        Error::from_cause(Cause::Library {
            source,
            class: Class::USER,
        })
    }
}

impl From<crate::checkpoint::CheckpointError> for Error {
    fn from(e: crate::checkpoint::CheckpointError) -> Error {
        let class = e.class();
        Error::library(e, class)
    }
}

/// Errors of the engine's own files and encodings: a bug when they fail.
macro_rules! internal_errors {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::library(e, Class::BUG)
            }
        }
    )*};
}

internal_errors!(
    arrow::error::ArrowError,
    parquet::errors::ParquetError,
    tokio::task::JoinError,
    std::fmt::Error,
    getrandom::Error,
);

/// Errors reading what the user wrote: settings, context, keys, SQL.
macro_rules! user_errors {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::library(e, Class::USER)
            }
        }
    )*};
}

user_errors!(
    serde_json::Error,
    toml::de::Error,
    std::num::ParseIntError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    stationflow_schemas::context::ContextError,
    stationflow_operators::RestoreError,
    figment::Error,
    ini::Error,
    object_store::path::Error,
    url::ParseError,
    chrono::ParseError,
    std::net::AddrParseError,
    rustls_pki_types::pem::Error,
    tokio_rustls::rustls::Error,
);

/// Reading and writing files: missing, refused or malformed is the user's; a network
/// that failed (a mounted store) may come back.
fn io_class(kind: std::io::ErrorKind) -> Class {
    use std::io::ErrorKind as K;
    match kind {
        K::NotFound
        | K::PermissionDenied
        | K::AlreadyExists
        | K::InvalidInput
        | K::InvalidData
        | K::UnexpectedEof
        | K::IsADirectory
        | K::NotADirectory => Class::USER,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::TimedOut
        | K::Interrupted
        | K::WouldBlock
        | K::BrokenPipe => Class::OUTAGE,
        _ => Class {
            domain: Domain::External,
            retry: false,
        },
    }
}

/// A query the user wrote (names, types, plans, limits) or the store it reads.
pub fn query_class(e: &DataFusionError) -> Class {
    match e {
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::SQL(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_)
        | DataFusionError::ResourcesExhausted(_)
        | DataFusionError::Execution(_) => Class::USER,
        DataFusionError::ObjectStore(e) => e.class(),
        DataFusionError::IoError(e) => io_class(e.kind()),
        DataFusionError::Context(_, inner) => query_class(inner),
        DataFusionError::Shared(inner) => query_class(inner),
        _ => Class::BUG,
    }
}

/// What the engine was doing when a result failed.
pub trait Context<T> {
    /// The error, if any, with `doing`.
    fn context(self, doing: impl fmt::Display) -> Result<T>;
    /// The error, if any, with what `doing` says (only called on failure).
    fn with_context<D: fmt::Display>(self, doing: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(doing))
    }

    fn with_context<D: fmt::Display>(self, doing: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(doing()))
    }
}

/// Something the user named that is not there.
impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::user(what.to_string()))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error::user(what().to_string()))
    }
}

/// Returns the user's failure, worded as `format!` words it.
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::error::Error::user(format!($($arg)+)))
    };
}

/// `bail!` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::error::bail!($($arg)+);
        }
    };
}

/// The user's failure, worded as `format!` words it.
macro_rules! format_err {
    ($($arg:tt)+) => {
        $crate::error::Error::user(format!($($arg)+))
    };
}

pub(crate) use {bail, ensure, format_err};

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Box<dyn std::error::Error + Send + Sync> {
        "the store's words".into()
    }

    #[test]
    fn store_failures_by_kind() {
        let path = "stationflow/x.parquet".to_string();
        let cases = [
            // A wrong key (S3 403) or none accepted (401).
            (
                StoreError::PermissionDenied {
                    path: path.clone(),
                    source: source(),
                },
                Domain::User,
                false,
            ),
            (
                StoreError::Unauthenticated {
                    path: path.clone(),
                    source: source(),
                },
                Domain::User,
                false,
            ),
            // A bucket that is not there (S3 404 NoSuchBucket on a put).
            (
                StoreError::NotFound {
                    path: path.clone(),
                    source: source(),
                },
                Domain::User,
                false,
            ),
            // Unreachable, or throttled (503 SlowDown) past the client's retries.
            (
                StoreError::Generic {
                    store: "S3",
                    source: source(),
                },
                Domain::External,
                true,
            ),
            (
                StoreError::Precondition {
                    path,
                    source: source(),
                },
                Domain::Internal,
                false,
            ),
        ];
        for (error, domain, retry) in cases {
            assert_eq!(error.class(), Class { domain, retry }, "{error}");
        }
    }

    fn mistyped_setting() -> KafkaError {
        let created = rdkafka::ClientConfig::new()
            .set("bootstrap.server", "127.0.0.1:9092")
            .create::<rdkafka::producer::BaseProducer>();
        created
            .err()
            .expect("librdkafka refuses a setting it does not know")
    }

    #[test]
    fn kafka_failures_by_kind() {
        use KafkaError::{Global, MessageProduction as Producing, MetadataFetch};
        let cases = [
            // Unreachable brokers, librdkafka's queue full while they catch up, timeouts.
            (Producing(Code::BrokerTransportFailure), Class::OUTAGE),
            (Producing(Code::AllBrokersDown), Class::OUTAGE),
            (Producing(Code::QueueFull), Class::OUTAGE),
            (Producing(Code::MessageTimedOut), Class::OUTAGE),
            // Moving leaders.
            (Producing(Code::NotLeaderForPartition), Class::OUTAGE),
            // A record larger than the topic takes.
            (Producing(Code::MessageSizeTooLarge), Class::USER),
            // A topic that is not there, or credentials the broker refuses.
            (Producing(Code::UnknownTopicOrPartition), Class::USER),
            (MetadataFetch(Code::TopicAuthorizationFailed), Class::USER),
            (Global(Code::SaslAuthenticationFailed), Class::USER),
            // A setting librdkafka does not know (`-X`), as it reports it.
            (mistyped_setting(), Class::USER),
            // Another producer with the engine's identity.
            (Producing(Code::ProducerFenced), Class::BUG),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
        // Of the user's, only a record refused as it is goes to the dead letters.
        assert!(refused_for_itself(&Producing(Code::MessageSizeTooLarge)));
        assert!(!refused_for_itself(&Producing(
            Code::UnknownTopicOrPartition
        )));
        assert!(!refused_for_itself(&Producing(Code::QueueFull)));
    }

    /// What the engine was doing reads outermost first, each once, and keeps the class
    /// of the cause underneath, whatever was added on the way up.
    #[test]
    fn context_reads_outermost_first_and_keeps_the_cause_class() {
        let denied: Result<()> = Err(StoreError::PermissionDenied {
            path: "x".into(),
            source: source(),
        }
        .into());
        let err = denied
            .context("writing p0-e3-0.parquet")
            .context("epoch 3 of signals/0")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "epoch 3 of signals/0: writing p0-e3-0.parquet: The operation lacked the \
             necessary privileges to complete for path x: the store's words"
        );
        assert_eq!(err.class(), Class::USER);
        assert!(err.store_error().is_some());
        // The message holds the cause: a chain printed whole, as the commands print
        // errors, says it once.
        assert!(std::error::Error::source(&err).is_none());

        let outage = Error::from(StoreError::Generic {
            store: "S3",
            source: source(),
        });
        assert_eq!(outage.context("listing").class(), Class::OUTAGE);
    }

    /// Each source of failure gets its class from its variant or kind.
    #[test]
    fn library_errors_are_classed_by_kind() {
        use std::io::ErrorKind as K;
        let io = |kind: K| Error::from(std::io::Error::new(kind, "x")).class();
        assert_eq!(io(K::NotFound), Class::USER);
        assert_eq!(io(K::PermissionDenied), Class::USER);
        assert_eq!(io(K::ConnectionRefused), Class::OUTAGE);
        assert_eq!(io(K::TimedOut), Class::OUTAGE);
        assert_eq!(io(K::StorageFull).domain, Domain::External);

        let plan = DataFusionError::Plan("no column `reason`".into());
        assert_eq!(Error::from(plan).class(), Class::USER);
        let store = DataFusionError::ObjectStore(Box::new(StoreError::Generic {
            store: "S3",
            source: source(),
        }));
        let store = Error::from(store);
        assert_eq!(store.class(), Class::OUTAGE);
        assert!(
            store.store_error().is_some(),
            "the store's own error, unwrapped"
        );
        let inside = DataFusionError::Context(
            "scanning".into(),
            Box::new(DataFusionError::ResourcesExhausted("pool".into())),
        );
        assert_eq!(Error::from(inside).class(), Class::USER);

        let kafka = Error::from(KafkaError::MessageProduction(Code::AllBrokersDown));
        assert_eq!(kafka.class(), Class::OUTAGE);
        assert!(kafka.downcast_ref::<KafkaError>().is_some());

        let json = serde_json::from_str::<u32>("x").unwrap_err();
        assert_eq!(Error::from(json).class(), Class::USER);
        let missing: Option<u32> = None;
        assert_eq!(
            missing.context("no key named \"a\"").unwrap_err().class(),
            Class::USER
        );
        assert_eq!(Error::internal("bug").class(), Class::BUG);
    }
}
