//! Replay input files (SPEC §2): JSON Lines (`.jsonl`, `.ndjson`, `.json`, optionally
//! `.gz`), long CSV (`station,ts,signal,value`, optionally `.gz`) and long Parquet with
//! the same columns. Each file is read one record at a time with its position and
//! original text, so a rejected record is dead-lettered as it was. Long rows with the
//! same station and `ts` in a row form one record.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use stationflow_schemas::signal::{
    decode_json_into, decode_usual_json_line, reading_from_text, ts_from_text, Reading, Rejection,
    SignalRecord, MAX_RECORD_BYTES,
};
use stationflow_schemas::RejectReason;

use super::Position;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines { gzip: bool },
    Csv { gzip: bool },
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let (stem, gzip) = match name.strip_suffix(".gz") {
            Some(stem) => (stem.to_string(), true),
            None => (name, false),
        };
        if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") || stem.ends_with(".json") {
            Some(Format::JsonLines { gzip })
        } else if stem.ends_with(".csv") {
            Some(Format::Csv { gzip })
        } else if stem.ends_with(".parquet") && !gzip {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

/// The input files under `paths` (directories recursively, hidden entries skipped), in
/// name order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(SourceError::Missing(path.clone()));
        }
        collect(path, &mut files).map_err(|error| SourceError::Io {
            path: path.clone(),
            error,
        })?;
    }
    if files.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(SourceError::Empty(names.join(", ")));
    }
    Ok(files)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            let hidden = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
            if !hidden {
                collect(&e, out)?;
            }
        }
    } else if Format::of(path).is_some() {
        out.push(path.to_path_buf());
    }
    Ok(())
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
    record: SignalRecord,
    rejection: Option<Rejection>,
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
    fn new(
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

/// Opens one input file as a reader of records.
pub fn open_reader(path: &Path) -> Result<Box<dyn RecordReader>, SourceError> {
    let io = |error| SourceError::Io {
        path: path.to_path_buf(),
        error,
    };
    let name: Arc<str> = path.display().to_string().into();
    Ok(match Format::of(path) {
        Some(Format::JsonLines { gzip }) => Box::new(JsonLines {
            lines: Lines::new(open(path, gzip).map_err(io)?, 1 << 16),
            text: 0..0,
            file: name,
            line: 0,
            path: path.to_path_buf(),
            overlong: None,
        }),
        Some(Format::Csv { gzip }) => Box::new(LongReader::new(
            CsvRows::new(open(path, gzip).map_err(io)?, path)?,
            name,
        )),
        Some(Format::Parquet) => Box::new(LongReader::new(ParquetRows::new(path)?, name)),
        None => {
            return Err(SourceError::Format {
                path: path.to_path_buf(),
                message: "unknown file type".into(),
            })
        }
    })
}

fn open(path: &Path, gzip: bool) -> std::io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)))
    } else {
        Box::new(file)
    })
}

/// JSON Lines; a record's original text stays in the line buffer (not copied) until
/// the next read.
struct JsonLines {
    lines: Lines,
    /// The last record's text in `lines`' buffer.
    text: Range<usize>,
    file: Arc<str>,
    line: u64,
    path: PathBuf,
    /// The kept start of the last record when its line was too long to read whole.
    overlong: Option<Vec<u8>>,
}

impl RecordReader for JsonLines {
    fn read_into(&mut self, item: &mut Item) -> Result<bool, SourceError> {
        self.overlong = None;
        self.text = match self.lines.usual_line(&mut item.record) {
            Some(text) => {
                self.line += 1;
                item.rejection = None;
                text
            }
            None => match self.next_text()? {
                Some(Line::Whole(text)) => {
                    let bytes = &self.lines.buf[text.clone()];
                    item.rejection = decode_json_into(bytes, None, None, &mut item.record).err();
                    text
                }
                Some(Line::TooLong { prefix, len }) => {
                    item.rejection = Some(too_long(len));
                    self.overlong = Some(prefix);
                    0..0
                }
                None => return Ok(false),
            },
        };
        if !Arc::ptr_eq(&item.position.file, &self.file) {
            item.position.file = self.file.clone();
        }
        item.position.line = self.line;
        Ok(true)
    }

    fn original<'a>(&'a self, _item: &'a Item) -> &'a [u8] {
        match &self.overlong {
            Some(prefix) => prefix,
            None => &self.lines.buf[self.text.clone()],
        }
    }
}

/// The rejection of a line of `len` bytes, longer than `MAX_LINE_BYTES`.
fn too_long(len: u64) -> Rejection {
    Rejection::new(
        RejectReason::TooLarge,
        format!(
            "the line is {len} bytes, more than the limit of {MAX_LINE_BYTES}; \
             the dead letter keeps its first {KEPT_PREFIX_BYTES}"
        ),
    )
}

impl JsonLines {
    /// The next line that is not blank, trimmed; `None` at the end.
    fn next_text(&mut self) -> Result<Option<Line>, SourceError> {
        loop {
            let line = match self.lines.next_line_range() {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(None),
                Err(error) => {
                    return Err(SourceError::Io {
                        path: self.path.clone(),
                        error,
                    })
                }
            };
            self.line += 1;
            let text = match line {
                Line::Whole(range) => trimmed(&self.lines.buf, range),
                long @ Line::TooLong { .. } => return Ok(Some(long)),
            };
            if !text.is_empty() {
                return Ok(Some(Line::Whole(text)));
            }
        }
    }
}

/// `range` of `buf` without ASCII whitespace at either end.
fn trimmed(buf: &[u8], range: Range<usize>) -> Range<usize> {
    let line = &buf[range.clone()];
    let start = range.start + (line.len() - line.trim_ascii_start().len());
    let end = range.end - (line.len() - line.trim_ascii_end().len());
    start..end.max(start)
}

/// No line longer than this is held in memory (a gzip file can expand to gigabytes
/// without a newline).
pub const MAX_LINE_BYTES: usize = MAX_RECORD_BYTES;

/// What the dead letter keeps of a line longer than `MAX_LINE_BYTES`.
pub const KEPT_PREFIX_BYTES: usize = 4096;

/// A line as `Lines` hands it out.
enum Line {
    /// Where it lies in the buffer, without its `\n`.
    Whole(Range<usize>),
    /// Longer than `MAX_LINE_BYTES`: its first bytes and its length; the rest was skipped.
    TooLong { prefix: Vec<u8>, len: u64 },
}

/// Lines of a byte stream, found with `memchr` in a buffer of its own (a line longer than
/// the buffer grows it, up to `MAX_LINE_BYTES`). The last line needs no newline.
struct Lines {
    input: Box<dyn Read>,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl Lines {
    fn new(input: Box<dyn Read>, capacity: usize) -> Self {
        Lines {
            input,
            buf: vec![0; capacity.max(1)],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next line without its `\n`, or `None` at the end.
    #[cfg(test)]
    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        Ok(match self.next_line_range()? {
            Some(Line::Whole(line)) => Some(&self.buf[line]),
            Some(Line::TooLong { .. }) => Some(b"(too long)"),
            None => None,
        })
    }

    /// The next line when it is whole in the buffer and in the usual layout, decoded into
    /// `record` in the same pass that finds its end (no separate newline search).
    fn usual_line(&mut self, record: &mut SignalRecord) -> Option<Range<usize>> {
        let len = decode_usual_json_line(&self.buf[self.start..self.end], record)?;
        let line = self.start..self.start + len;
        self.start += len + 1;
        Some(line)
    }

    /// Where the next line (without its `\n`) lies in `buf`, valid until the next call;
    /// `None` at the end.
    fn next_line_range(&mut self) -> std::io::Result<Option<Line>> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let line = self.start..searched + i;
                self.start = searched + i + 1;
                return Ok(Some(Line::Whole(line)));
            }
            searched = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.end;
                self.start = self.end;
                return Ok(Some(Line::Whole(line)));
            }
            if self.end - self.start > MAX_LINE_BYTES {
                return self.skip_long_line().map(Some);
            }
            searched -= self.start;
            self.refill()?;
        }
    }

    /// Keeps the start of a line too long to hold and reads past its end.
    fn skip_long_line(&mut self) -> std::io::Result<Line> {
        let prefix = self.buf[self.start..self.start + KEPT_PREFIX_BYTES].to_vec();
        let mut len = (self.end - self.start) as u64;
        loop {
            self.start = self.end;
            if self.eof {
                return Ok(Line::TooLong { prefix, len });
            }
            self.refill()?;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                self.start += i + 1;
                return Ok(Line::TooLong {
                    prefix,
                    len: len + i as u64,
                });
            }
            len += (self.end - self.start) as u64;
        }
    }

    /// Moves the unread bytes to the front and reads more after them.
    fn refill(&mut self) -> std::io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One row of a long-format file.
pub enum Row {
    Values {
        line: u64,
        station: String,
        ts: String,
        signal: String,
        value: String,
    },
    /// A row that could not be read, with its text, what was wrong and its reason.
    Malformed {
        line: u64,
        text: String,
        message: String,
        reason: RejectReason,
    },
}

/// Rows of a long-format file, in file order.
pub trait RowSource {
    fn next_row(&mut self) -> Result<Option<Row>, SourceError>;
}

/// Gathers consecutive long rows of one station and `ts` into records.
struct LongReader<S: RowSource> {
    rows: S,
    file: Arc<str>,
    pending: Option<Row>,
    group: Vec<(u64, String, String, String, String)>,
    /// Rows of the gathered station and `ts` beyond `MAX_ROWS_PER_RECORD`, not kept.
    dropped: u64,
}

/// The most rows one long-format record (a station and `ts`) may have: there are ten
/// signal keys, so more is a broken export, and keeping them all would let one record
/// fill memory.
const MAX_ROWS_PER_RECORD: usize = 1024;

impl<S: RowSource> LongReader<S> {
    fn new(rows: S, file: Arc<str>) -> Self {
        LongReader {
            rows,
            file,
            pending: None,
            group: Vec::new(),
            dropped: 0,
        }
    }

    fn position(&self, line: u64) -> Position {
        Position {
            file: self.file.clone(),
            line,
        }
    }

    /// The record the gathered rows make.
    fn record(&mut self) -> Item {
        let rows = std::mem::take(&mut self.group);
        let line = rows[0].0;
        let text = rows
            .iter()
            .map(|(_, s, t, k, v)| format!("{s},{t},{k},{v}"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut readings: Vec<Reading> = Vec::with_capacity(rows.len());
        let mut unknown = 0;
        let mut error = None;
        for (_, _, _, signal, value) in &rows {
            match reading_from_text(signal, value) {
                Ok(Some(r)) => readings.push(r),
                Ok(None) => unknown += 1,
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        let (station, ts) = (rows[0].1.trim(), rows[0].2.as_str());
        let dropped = std::mem::take(&mut self.dropped);
        let decoded = match error {
            _ if dropped > 0 => Err(Rejection::new(
                RejectReason::TooLarge,
                format!(
                    "{} rows for one station and ts, more than {MAX_ROWS_PER_RECORD}; \
                     the dead letter keeps the first {MAX_ROWS_PER_RECORD}",
                    rows.len() as u64 + dropped
                ),
            )),
            Some(e) => Err(e),
            None if station.is_empty() => Err(Rejection::new(
                RejectReason::UnknownStation,
                "the row has no station",
            )),
            None => ts_from_text(ts).map(|ts| SignalRecord {
                station: station.to_string(),
                ts,
                seq: None,
                readings: readings.into_iter().collect(),
                unknown_keys: unknown,
            }),
        };
        Item::new(self.position(line), text.into_bytes(), decoded)
    }

    fn next_record(&mut self) -> Result<Option<Item>, SourceError> {
        loop {
            let row = match self.pending.take() {
                Some(r) => Some(r),
                None => self.rows.next_row()?,
            };
            match row {
                None if self.group.is_empty() => return Ok(None),
                None => return Ok(Some(self.record())),
                Some(Row::Malformed {
                    line,
                    text,
                    message,
                    reason,
                }) => {
                    if !self.group.is_empty() {
                        self.pending = Some(Row::Malformed {
                            line,
                            text,
                            message,
                            reason,
                        });
                        return Ok(Some(self.record()));
                    }
                    return Ok(Some(Item::new(
                        self.position(line),
                        text.into_bytes(),
                        Err(Rejection::new(reason, message)),
                    )));
                }
                Some(Row::Values {
                    line,
                    station,
                    ts,
                    signal,
                    value,
                }) => {
                    let same = self
                        .group
                        .first()
                        .is_none_or(|g| g.1 == station && g.2 == ts);
                    if !same {
                        self.pending = Some(Row::Values {
                            line,
                            station,
                            ts,
                            signal,
                            value,
                        });
                        return Ok(Some(self.record()));
                    }
                    if self.group.len() < MAX_ROWS_PER_RECORD {
                        self.group.push((line, station, ts, signal, value));
                    } else {
                        self.dropped += 1;
                    }
                }
            }
        }
    }
}

impl<S: RowSource> RecordReader for LongReader<S> {
    fn read_into(&mut self, item: &mut Item) -> Result<bool, SourceError> {
        Ok(match self.next_record()? {
            Some(record) => {
                *item = record;
                true
            }
            None => false,
        })
    }
}

/// Long CSV, a record a line: read through `Lines` (so no field can swallow the rest of
/// the file) and split by `csv_core`. A row whose quotes do not close on its own line, or
/// that is not UTF-8, is malformed and dead-lettered with its text; fields spanning lines,
/// which RFC 4180 allows, are not read (no long-format value holds a newline).
struct CsvRows {
    lines: Lines,
    /// The last line read, 1-based.
    line: u64,
    columns: [usize; 4],
    splitter: CsvSplitter,
    path: PathBuf,
}

/// A line that is not a record: its text, why, and the reason for its dead letter.
type Unreadable = (String, String, RejectReason);

/// Splits one CSV line into its fields, reusing its buffers.
struct CsvSplitter {
    parser: csv_core::Reader,
    input: Vec<u8>,
    fields: Vec<u8>,
    ends: Vec<usize>,
    /// How many fields the last line had.
    count: usize,
}

impl Default for CsvSplitter {
    fn default() -> Self {
        CsvSplitter {
            // Built, not `Default`: csv_core's derived default has no parsing table.
            parser: csv_core::Reader::new(),
            input: Vec::new(),
            fields: Vec::new(),
            ends: Vec::new(),
            count: 0,
        }
    }
}

impl CsvSplitter {
    /// Splits `line` (without its newline); why not, when it is not one whole record.
    fn split(&mut self, line: &[u8]) -> Result<(), String> {
        if line.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
            return Err("unterminated quote: a quoted field does not end on its line".into());
        }
        std::str::from_utf8(line).map_err(|_| "the row is not UTF-8".to_string())?;
        self.input.clear();
        self.input.extend_from_slice(line);
        self.input.push(b'\n');
        self.fields.resize(self.input.len(), 0);
        self.ends.resize(self.input.len() + 1, 0);
        self.parser.reset();
        let (result, _, _, count) =
            (self.parser).read_record(&self.input, &mut self.fields, &mut self.ends);
        match result {
            csv_core::ReadRecordResult::Record => {
                self.count = count;
                Ok(())
            }
            other => Err(format!("the row is not one CSV record ({other:?})")),
        }
    }

    /// Field `i` of the last line split, trimmed of nothing.
    fn field(&self, i: usize) -> Option<&str> {
        if i >= self.count {
            return None;
        }
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        // Checked as UTF-8 whole; a field of it is too, csv_core cuts at ASCII bytes.
        std::str::from_utf8(&self.fields[start..self.ends[i]]).ok()
    }
}

impl CsvRows {
    fn new(input: Box<dyn Read>, path: &Path) -> Result<Self, SourceError> {
        let format = |message: String| SourceError::Format {
            path: path.to_path_buf(),
            message,
        };
        let mut rows = CsvRows {
            lines: Lines::new(input, 1 << 16),
            line: 0,
            columns: [0; 4],
            splitter: CsvSplitter::default(),
            path: path.to_path_buf(),
        };
        let header = match rows.next_line().map_err(|error| SourceError::Io {
            path: path.to_path_buf(),
            error,
        })? {
            Some(Ok(())) => rows.splitter.count,
            Some(Err((_, message, _))) => return Err(format(format!("the header: {message}"))),
            None => return Err(format("the file is empty: no header".into())),
        };
        let names: Vec<String> = (0..header)
            .map(|i| {
                rows.splitter
                    .field(i)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .collect();
        let column = |name: &str| {
            let name = name.to_string();
            names
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(&name))
                .ok_or_else(|| {
                    format(format!(
                        "the CSV header needs columns station,ts,signal,value; `{name}` is missing"
                    ))
                })
        };
        rows.columns = [
            column("station")?,
            column("ts")?,
            column("signal")?,
            column("value")?,
        ];
        Ok(rows)
    }

    /// Splits the next line that is not blank: `Err` with its text and why when it is
    /// not a record; `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<Result<(), Unreadable>>> {
        loop {
            let Some(line) = self.lines.next_line_range()? else {
                return Ok(None);
            };
            self.line += 1;
            let range = match line {
                Line::Whole(range) => range,
                Line::TooLong { prefix, len } => {
                    let text = String::from_utf8_lossy(&prefix).into_owned();
                    let rejection = too_long(len);
                    return Ok(Some(Err((text, rejection.detail, rejection.reason))));
                }
            };
            let text = &self.lines.buf[range];
            if text.trim_ascii().is_empty() {
                continue;
            }
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            return Ok(Some(self.splitter.split(text).map_err(|why| {
                let text = String::from_utf8_lossy(text).into_owned();
                (
                    text,
                    format!("malformed CSV row: {why}"),
                    RejectReason::MalformedJson,
                )
            })));
        }
    }
}

impl RowSource for CsvRows {
    fn next_row(&mut self) -> Result<Option<Row>, SourceError> {
        let split = self.next_line().map_err(|error| SourceError::Io {
            path: self.path.clone(),
            error,
        })?;
        let line = self.line;
        Ok(match split {
            None => None,
            Some(Err((text, message, reason))) => Some(Row::Malformed {
                line,
                text,
                message,
                reason,
            }),
            Some(Ok(())) => {
                let field = |i: usize| self.splitter.field(self.columns[i]).map(str::to_string);
                Some(match (field(0), field(1), field(2), field(3)) {
                    (Some(station), Some(ts), Some(signal), Some(value)) => Row::Values {
                        line,
                        station,
                        ts,
                        signal,
                        value,
                    },
                    _ => Row::Malformed {
                        line,
                        text: (0..self.splitter.count)
                            .filter_map(|i| self.splitter.field(i))
                            .collect::<Vec<_>>()
                            .join(","),
                        message: format!(
                            "CSV row has {} fields where station,ts,signal,value are needed",
                            self.splitter.count
                        ),
                        reason: RejectReason::MalformedJson,
                    },
                })
            }
        })
    }
}

struct ParquetRows {
    path: PathBuf,
    batches: ParquetRecordBatchReader,
    current: Option<[StringArray; 4]>,
    index: usize,
    row: u64,
}

impl ParquetRows {
    fn new(path: &Path) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|error| SourceError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| SourceError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(ParquetRows {
            path: path.to_path_buf(),
            batches,
            current: None,
            index: 0,
            row: 0,
        })
    }

    /// The four long columns of a batch as text (timestamps as epoch ms).
    fn columns(&self, batch: &RecordBatch) -> Result<[StringArray; 4], SourceError> {
        let format = |message: String| SourceError::Format {
            path: self.path.clone(),
            message,
        };
        let text = |name: &str| -> Result<StringArray, SourceError> {
            let col: &ArrayRef = batch.column_by_name(name).ok_or_else(|| {
                format(format!("the Parquet file needs columns station, ts, signal, value; `{name}` is missing"))
            })?;
            let col = match col.data_type() {
                DataType::Timestamp(_, _) => {
                    cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))
                        .and_then(|c| cast(&c, &DataType::Int64))
                        .map_err(|e| format(format!("column {name}: {e}")))?
                }
                _ => col.clone(),
            };
            let col =
                cast(&col, &DataType::Utf8).map_err(|e| format(format!("column {name}: {e}")))?;
            Ok(col.as_string::<i32>().clone())
        };
        Ok([
            text("station")?,
            text("ts")?,
            text("signal")?,
            text("value")?,
        ])
    }
}

fn text_at(a: &StringArray, i: usize) -> String {
    if a.is_null(i) {
        String::new()
    } else {
        a.value(i).to_string()
    }
}

impl RowSource for ParquetRows {
    fn next_row(&mut self) -> Result<Option<Row>, SourceError> {
        loop {
            if let Some(cols) = &self.current {
                if self.index < cols[0].len() {
                    let i = self.index;
                    self.index += 1;
                    self.row += 1;
                    return Ok(Some(Row::Values {
                        line: self.row,
                        station: text_at(&cols[0], i),
                        ts: text_at(&cols[1], i),
                        signal: text_at(&cols[2], i),
                        value: text_at(&cols[3], i),
                    }));
                }
            }
            match self.batches.next() {
                None => return Ok(None),
                Some(batch) => {
                    let batch = batch.map_err(|e| SourceError::Format {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })?;
                    self.current = Some(self.columns(&batch)?);
                    self.index = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str, capacity: usize) -> Vec<String> {
        let mut lines = Lines::new(Box::new(std::io::Cursor::new(text.to_string())), capacity);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(String::from_utf8(line.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn json_lines_read_usual_and_other_lines_alike_across_refills() {
        let usual = r#"{"station":"S1","ts":"2026-03-02T06:00:00.250Z","seq":7,"productive":1}"#;
        let lines = [
            usual,
            "",
            r#"  {"station":"S1","ts":0,"seq":8,"rssi":-50}  "#,
            r#"{"ts":0,"station":"S2","seq":1,"productive":0}"#,
            "not json",
            r#"{"station":"S1","ts":"2026-03-02T06:00:01.000Z","seq":9,"rssi":-5}"#,
            usual,
        ];
        let text = format!("{}\r\n{}", lines[..6].join("\n"), lines[6]);
        let want: Vec<(u64, String, Result<SignalRecord, Rejection>)> =
            [(1, 0), (3, 2), (4, 3), (5, 4)]
                .into_iter()
                .chain([(6, 5), (7, 6)])
                .map(|(line, i)| {
                    let original = lines[i].trim();
                    let decoded =
                        stationflow_schemas::signal::decode_json(original.as_bytes(), None, None);
                    (line, original.to_string(), decoded)
                })
                .collect();
        for capacity in [1, 7, 64, 100, 1 << 16] {
            let mut reader = JsonLines {
                lines: Lines::new(Box::new(std::io::Cursor::new(text.clone())), capacity),
                text: 0..0,
                file: "f.jsonl".into(),
                line: 0,
                path: "f.jsonl".into(),
                overlong: None,
            };
            let mut item = Item::default();
            let mut got = Vec::new();
            while reader.read_into(&mut item).unwrap() {
                let original = String::from_utf8(reader.original(&item).to_vec()).unwrap();
                let decoded = item.decoded().cloned().map_err(Clone::clone);
                got.push((item.position.line, original, decoded));
            }
            assert_eq!(got, want, "capacity {capacity}");
        }
    }

    #[test]
    fn lines_split_on_newlines_across_refills_and_growth() {
        let text = "{\"a\":1}\n\nlonger line than the buffer\r\nlast without newline";
        let want = vec![
            "{\"a\":1}",
            "",
            "longer line than the buffer\r",
            "last without newline",
        ];
        for capacity in [1, 3, 8, 64, 1 << 20] {
            assert_eq!(lines_of(text, capacity), want, "capacity {capacity}");
        }
        assert_eq!(lines_of("", 4), Vec::<String>::new());
        assert_eq!(lines_of("\n", 4), vec![""]);
        assert_eq!(lines_of("x\n", 4), vec!["x"]);
    }
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    /// (line, reason or "ok", station) of each record read from `text` as long CSV.
    fn read(text: &str) -> Vec<(u64, String, String)> {
        let input = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        let rows = CsvRows::new(input, Path::new("t.csv")).expect("header");
        let mut reader = LongReader::new(rows, Arc::from("t.csv"));
        let mut item = Item::default();
        let mut out = Vec::new();
        while reader.read_into(&mut item).expect("read") {
            let (reason, station) = match item.decoded() {
                Ok(r) => ("ok".to_string(), r.station.clone()),
                Err(e) => (e.reason.as_str().to_string(), String::new()),
            };
            out.push((item.position.line, reason, station));
        }
        out
    }

    #[test]
    fn an_unterminated_quote_spoils_only_its_own_row() {
        let text = "\u{feff}station,ts,signal,value\r\n\
                    \"Press, #1\",2026-03-02T08:00:00Z,productive,1\r\n\
                    \"Press #2,2026-03-02T08:00:01Z,productive,1\n\
                    \n\
                    Press #3,2026-03-02T08:00:02Z,error_code,\"E \"\"7\"\"\"\n\
                    Press #4,2026-03-02T08:00:03Z,productive\n";
        let got = read(text);
        let expect = [
            (2, "ok", "Press, #1"),
            (3, "malformed_json", ""),
            (5, "ok", "Press #3"),
            (6, "malformed_json", ""),
        ];
        let got: Vec<(u64, &str, &str)> = got
            .iter()
            .map(|(l, r, s)| (*l, r.as_str(), s.as_str()))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn a_malformed_row_keeps_its_text() {
        let text = "station,ts,signal,value\nS1,\"2026-03-02,productive,1\n";
        let input = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        let mut reader = LongReader::new(
            CsvRows::new(input, Path::new("t.csv")).expect("header"),
            Arc::from("t.csv"),
        );
        let mut item = Item::default();
        assert!(reader.read_into(&mut item).expect("read"));
        assert_eq!(reader.original(&item), b"S1,\"2026-03-02,productive,1");
        let why = item.decoded().expect_err("malformed");
        assert!(why.detail.contains("unterminated quote"), "{}", why.detail);
    }

    #[test]
    fn thousands_of_rows_for_one_instant_are_one_dead_letter() {
        let mut text = String::from("station,ts,signal,value\n");
        for _ in 0..3000 {
            text += "S1,2026-03-02T08:00:00Z,production_complete_good,1\n";
        }
        text += "S1,2026-03-02T08:00:01Z,productive,1\n";
        let got = read(&text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].1, "too_large");
        assert_eq!(got[1].1, "ok");
    }
}
