//! Where signal records come from. `files`: JSON Lines, long CSV and long Parquet for
//! replay; `context_topic`: the compacted context topic the live engine follows. (The
//! signals topic is read by the live driver's consumer group.)

pub mod context_topic;
pub mod files;
pub mod merge;

use std::fmt;
use std::sync::Arc;

/// Where a record was read: file and line (row, for Parquet), 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: Arc<str>,
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}
