//! `station.alerts` records (SPEC §5): alert rules firing and clearing on a station's
//! windows, and downtime spans starting and ending. Consumers de-duplicate on
//! `(station, kind, rule, since)`: after a crash the live engine may send one again.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A rule's condition has held for `for_minutes` consecutive windows.
    RuleFired,
    /// A firing rule's condition no longer holds.
    RuleCleared,
    /// A downtime span is under way (or was seen whole, when it began and ended
    /// between two advances of the clock).
    DowntimeStarted,
    /// A downtime span has ended; `retracted` as reason when later data showed it was
    /// no downtime after all.
    DowntimeEnded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub plant: String,
    pub line: Option<String>,
    pub station: String,
    /// Rules: the first window of the streak that fired, or the window that cleared.
    /// Downtime: the span's start. Epoch ms UTC.
    pub since: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Rules: the metric in the window that fired or cleared the rule (none: the
    /// window has no value for it, e.g. OEE without planned time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Rules: the window that fired or cleared the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<i64>,
    /// `downtime_ended`: the span's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Epoch ms UTC.
    pub emitted_at: i64,
}

impl Alert {
    /// An alert about `station` with only the common fields set.
    pub fn new(
        kind: AlertKind,
        plant: &str,
        line: Option<&str>,
        station: &str,
        since: i64,
    ) -> Self {
        Alert {
            kind,
            plant: plant.to_string(),
            line: line.map(str::to_string),
            station: station.to_string(),
            since,
            rule: None,
            metric: None,
            op: None,
            threshold: None,
            value: None,
            window_start: None,
            end: None,
            reason: None,
            error_code: None,
            emitted_at: 0,
        }
    }
}
