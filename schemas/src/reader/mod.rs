//! Reading signal files one record at a time (SPEC §2): JSON Lines, and long rows
//! (`station,ts,signal,value`) from CSV text or any other row source, such as the
//! engine's Parquet reader. Each record comes with its position and original text, so a
//! rejected record is dead-lettered as it was. Readers take any `Read` and hold at most
//! one line (`MAX_LINE_BYTES`) or one long record (`MAX_ROWS_PER_RECORD` rows) at a time,
//! whatever the input holds. Opening files, gzip and Parquet stay in the engine.

mod csv;
mod json_lines;
mod lines;
mod long;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dead_letter::RejectReason;
use crate::signal::{Rejection, SignalRecord};

pub use csv::CsvRows;
pub use json_lines::JsonLines;
pub use lines::{KEPT_PREFIX_BYTES, MAX_LINE_BYTES};
pub use long::{LongReader, Row, RowSource, MAX_ROWS_PER_RECORD};

/// A failure to read input at all (not a bad record): the run stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("input {0} does not exist")]
    Missing(PathBuf),
    #[error("no input files (.jsonl, .jsonl.gz, .csv, .csv.gz, .parquet) under {0}")]
    Empty(String),
    /// `error` is not marked as the source: an I/O error that wraps another (a gzip
    /// stream's) shows that one's text already, and the chain printed it twice.
    #[error("reading {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("reading {path}: {message}")]
    Format { path: PathBuf, message: String },
}

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
/// One record as read: where, and what decoding made of it. Readers fill an `Item` in
/// place, so its buffers serve record after record. Its original text comes from
/// `RecordReader::original` (what `MergedFiles::next_item` hands out beside it).
#[derive(Debug)]
pub struct Item {
    pub position: Position,
    /// The original text, for readers that build it (long formats); JSON Lines leaves it
    /// empty and keeps the text in its line buffer.
    pub original: Vec<u8>,
    pub(crate) record: SignalRecord,
    pub(crate) rejection: Option<Rejection>,
}

impl Default for Item {
    fn default() -> Self {
        Item {
            position: Position {
                file: Arc::from(""),
                line: 0,
            },
            original: Vec::new(),
            record: SignalRecord::default(),
            rejection: None,
        }
    }
}

impl Item {
    pub(crate) fn new(
        position: Position,
        original: Vec<u8>,
        decoded: Result<SignalRecord, Rejection>,
    ) -> Self {
        let (record, rejection) = match decoded {
            Ok(record) => (record, None),
            Err(rejection) => (SignalRecord::default(), Some(rejection)),
        };
        Item {
            position,
            original,
            record,
            rejection,
        }
    }

    pub fn decoded(&self) -> Result<&SignalRecord, &Rejection> {
        match &self.rejection {
            None => Ok(&self.record),
            Some(rejection) => Err(rejection),
        }
    }
}

/// A file read one record at a time.
pub trait RecordReader {
    /// Reads the next record into `item`, reusing its buffers; `false` at the end.
    fn read_into(&mut self, item: &mut Item) -> Result<bool, SourceError>;

    /// The original text of the record last read into `item`, valid until the next read.
    fn original<'a>(&'a self, item: &'a Item) -> &'a [u8] {
        &item.original
    }
}

/// The rejection of a line of `len` bytes, longer than `MAX_LINE_BYTES`.
pub(crate) fn too_long(len: u64) -> Rejection {
    Rejection::new(
        RejectReason::TooLarge,
        format!(
            "the line is {len} bytes, more than the limit of {MAX_LINE_BYTES}; \
             the dead letter keeps its first {KEPT_PREFIX_BYTES}"
        ),
    )
}
