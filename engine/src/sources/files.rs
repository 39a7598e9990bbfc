//! Replay input files (SPEC §2): JSON Lines (`.jsonl`, `.json`, optionally `.gz`), long
//! CSV (`station,ts,signal,value`, optionally `.gz`) and long Parquet with the same
//! columns. Each record reaches the callback with its position and original text, so a
//! rejected one is dead-lettered as it was. Long rows with the same station and `ts` in
//! a row form one record.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use stationflow_schemas::signal::{
    decode_json, reading_from_text, ts_from_text, Reading, Rejection, SignalRecord,
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
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
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

/// The input files under `paths` (directories recursively), in name order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(SourceError::Missing(path.clone()));
        }
        collect(path, &mut files).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
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

/// One record as read: where, its original text, and what decoding made of it.
pub struct Item<'a> {
    pub position: Position,
    pub original: &'a [u8],
    pub decoded: Result<SignalRecord, Rejection>,
}

/// Reads one file, handing every record to `each`. Returns the bytes read.
pub fn read(path: &Path, each: &mut dyn FnMut(Item<'_>)) -> Result<u64, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name: Arc<str> = path.display().to_string().into();
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    match Format::of(path) {
        Some(Format::JsonLines { gzip }) => {
            read_json_lines(open(path, gzip).map_err(io)?, &name, each).map_err(io)?
        }
        Some(Format::Csv { gzip }) => read_csv(open(path, gzip).map_err(io)?, &name, each, path)?,
        Some(Format::Parquet) => read_parquet(path, &name, each)?,
        None => {
            return Err(SourceError::Format {
                path: path.to_path_buf(),
                message: "unknown file type".into(),
            })
        }
    }
    Ok(bytes)
}

fn open(path: &Path, gzip: bool) -> std::io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)))
    } else {
        Box::new(file)
    })
}

fn read_json_lines(
    input: Box<dyn Read>,
    file: &Arc<str>,
    each: &mut dyn FnMut(Item<'_>),
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(512);
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        let text = trim_ascii(&line);
        if text.is_empty() {
            continue;
        }
        each(Item {
            position: Position {
                file: file.clone(),
                line: number,
            },
            original: text,
            decoded: decode_json(text, None, None),
        });
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

fn text_at(a: &arrow::array::StringArray, i: usize) -> &str {
    if a.is_null(i) {
        ""
    } else {
        a.value(i)
    }
}

/// Gathers consecutive long rows of one station and `ts` into a record.
struct LongRecord {
    file: Arc<str>,
    first_line: u64,
    station: String,
    ts: String,
    text: String,
    readings: Vec<Reading>,
    unknown: u32,
    error: Option<Rejection>,
}

impl LongRecord {
    fn new(file: &Arc<str>) -> Self {
        LongRecord {
            file: file.clone(),
            first_line: 0,
            station: String::new(),
            ts: String::new(),
            text: String::new(),
            readings: Vec::new(),
            unknown: 0,
            error: None,
        }
    }

    /// Adds a row; emits the record in progress first when this row starts another.
    fn row(
        &mut self,
        line: u64,
        station: &str,
        ts: &str,
        signal: &str,
        value: &str,
        each: &mut dyn FnMut(Item<'_>),
    ) {
        if !self.text.is_empty() && (self.station != station || self.ts != ts) {
            self.flush(each);
        }
        if self.text.is_empty() {
            self.first_line = line;
            self.station.clear();
            self.station.push_str(station);
            self.ts.clear();
            self.ts.push_str(ts);
        } else {
            self.text.push('\n');
        }
        for (i, f) in [station, ts, signal, value].iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(f);
        }
        match reading_from_text(signal, value) {
            Ok(Some(r)) => self.readings.push(r),
            Ok(None) => self.unknown += 1,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn malformed(
        &mut self,
        line: u64,
        text: &str,
        message: String,
        each: &mut dyn FnMut(Item<'_>),
    ) {
        self.flush(each);
        each(Item {
            position: Position {
                file: self.file.clone(),
                line,
            },
            original: text.as_bytes(),
            decoded: Err(Rejection::new(RejectReason::MalformedJson, message)),
        });
    }

    fn flush(&mut self, each: &mut dyn FnMut(Item<'_>)) {
        if self.text.is_empty() {
            return;
        }
        let decoded = match (self.error.take(), self.station.trim()) {
            (Some(e), _) => Err(e),
            (None, "") => Err(Rejection::new(
                RejectReason::UnknownStation,
                "the row has no station",
            )),
            (None, station) => ts_from_text(&self.ts).map(|ts| SignalRecord {
                station: station.to_string(),
                ts,
                seq: None,
                readings: std::mem::take(&mut self.readings).into_iter().collect(),
                unknown_keys: self.unknown,
            }),
        };
        each(Item {
            position: Position {
                file: self.file.clone(),
                line: self.first_line,
            },
            original: self.text.as_bytes(),
            decoded,
        });
        self.text.clear();
        self.readings.clear();
        self.unknown = 0;
    }
}

fn read_csv(
    input: Box<dyn Read>,
    file: &Arc<str>,
    each: &mut dyn FnMut(Item<'_>),
    path: &Path,
) -> Result<(), SourceError> {
    let format = |message: String| SourceError::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, input));
    let headers = reader.headers().map_err(|e| format(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format(format!(
                    "the CSV header needs columns station,ts,signal,value; `{name}` is missing"
                ))
            })
    };
    let cols = [
        column("station")?,
        column("ts")?,
        column("signal")?,
        column("value")?,
    ];
    let mut rec = LongRecord::new(file);
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {
                let field = |i: usize| row.get(cols[i]);
                match (field(0), field(1), field(2), field(3)) {
                    (Some(s), Some(t), Some(k), Some(v)) => rec.row(line, s, t, k, v, each),
                    _ => {
                        let text = row.iter().collect::<Vec<_>>().join(",");
                        rec.malformed(
                            line,
                            &text,
                            format!("CSV row has {} fields, not 4", row.len()),
                            each,
                        )
                    }
                }
            }
            Err(e) => rec.malformed(line, "", format!("malformed CSV row: {e}"), each),
        }
    }
    rec.flush(each);
    Ok(())
}

fn read_parquet(
    path: &Path,
    file: &Arc<str>,
    each: &mut dyn FnMut(Item<'_>),
) -> Result<(), SourceError> {
    let format = |message: String| SourceError::Format {
        path: path.to_path_buf(),
        message,
    };
    let f = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| format(e.to_string()))?;
    let mut rec = LongRecord::new(file);
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| format(e.to_string()))?;
        let text = |name: &str| -> Result<arrow::array::ArrayRef, SourceError> {
            let col = batch
                .column_by_name(name)
                .ok_or_else(|| format(format!("the Parquet file needs columns station, ts, signal, value; `{name}` is missing")))?;
            let col = match col.data_type() {
                DataType::Timestamp(_, _) => cast(
                    &cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))
                        .map_err(|e| format(e.to_string()))?,
                    &DataType::Int64,
                ),
                _ => Ok(col.clone()),
            }
            .map_err(|e| format(e.to_string()))?;
            cast(&col, &DataType::Utf8).map_err(|e| format(format!("column {name}: {e}")))
        };
        let (station, ts, signal, value) = (
            text("station")?,
            text("ts")?,
            text("signal")?,
            text("value")?,
        );
        let (station, ts, signal, value) = (
            station.as_string::<i32>(),
            ts.as_string::<i32>(),
            signal.as_string::<i32>(),
            value.as_string::<i32>(),
        );
        for i in 0..batch.num_rows() {
            row_number += 1;
            rec.row(
                row_number,
                text_at(station, i),
                text_at(ts, i),
                text_at(signal, i),
                text_at(value, i),
                each,
            );
        }
    }
    rec.flush(each);
    Ok(())
}
