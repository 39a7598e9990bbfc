//! Why a record was not applied: the reasons of SPEC §2, written to the dead-letter
//! output. A rejection is data, not an error: the run goes on.

use serde::{Deserialize, Serialize};

/// The reason a record went to the dead-letter output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    MalformedJson,
    MissingTs,
    BadTs,
    UnknownStation,
    BadValue,
    FutureTs,
    TooLate,
    /// Live only: the record's station belongs to another partition of the signals topic
    /// (its producer does not hash keys as Kafka's default partitioner does).
    WrongPartition,
    /// A record (a line of a file, a Kafka message) larger than the limit; the dead
    /// letter keeps its start.
    TooLarge,
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::MalformedJson,
        RejectReason::MissingTs,
        RejectReason::BadTs,
        RejectReason::UnknownStation,
        RejectReason::BadValue,
        RejectReason::FutureTs,
        RejectReason::TooLate,
        RejectReason::WrongPartition,
        RejectReason::TooLarge,
    ];

    /// The reason as written in dead letters and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::MissingTs => "missing_ts",
            RejectReason::BadTs => "bad_ts",
            RejectReason::UnknownStation => "unknown_station",
            RejectReason::BadValue => "bad_value",
            RejectReason::FutureTs => "future_ts",
            RejectReason::TooLate => "too_late",
            RejectReason::WrongPartition => "wrong_partition",
            RejectReason::TooLarge => "too_large",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
