//! How the engine tells failures apart, by the variant the failing library gave: whose
//! they are to fix (`Domain`) and whether trying again may succeed (`retry`). The upload
//! queue retries only what may succeed, and stops saying so, once, on what will not; the
//! Kafka sink dead-letters a record the broker refuses for what it is
//! (`refused_for_itself`).

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
    const USER: Class = Class {
        domain: Domain::User,
        retry: false,
    };
    const OUTAGE: Class = Class {
        domain: Domain::External,
        retry: true,
    };
    const BUG: Class = Class {
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
}
