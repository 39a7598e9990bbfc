//! Replay input files (SPEC §2): JSON Lines (`.jsonl`, `.ndjson`, `.json`, optionally
//! `.gz`), long CSV (`station,ts,signal,value`, optionally `.gz`) and long Parquet with
//! the same columns. This module finds and opens them; reading records out of the bytes
//! is `stationflow_schemas::reader`'s, the same for every source.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use stationflow_schemas::reader::{CsvRows, JsonLines, LongReader, Row, RowSource};

pub mod merge;

pub use stationflow_schemas::reader::{
    Item, RecordReader, SourceError, KEPT_PREFIX_BYTES, MAX_LINE_BYTES,
};

use merge::MergedFiles;

/// The files source: files and folders as given on the command line.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub inputs: Vec<PathBuf>,
}

impl FilesConfig {
    pub fn new(inputs: &[PathBuf]) -> Self {
        FilesConfig {
            inputs: inputs.to_vec(),
        }
    }

    /// Finds the input files (a folder's, recursively) and reads them as one stream in
    /// event-time order.
    pub fn build(&self) -> Result<MergedFiles, SourceError> {
        MergedFiles::new(discover(&self.inputs)?)
    }
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

/// Opens one input file as a reader of records.
pub fn open_reader(path: &Path) -> Result<Box<dyn RecordReader>, SourceError> {
    let io = |error| SourceError::Io {
        path: path.to_path_buf(),
        error,
    };
    let name: Arc<str> = path.display().to_string().into();
    Ok(match Format::of(path) {
        Some(Format::JsonLines { gzip }) => {
            Box::new(JsonLines::new(open(path, gzip).map_err(io)?, path))
        }
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

/// Long rows of a Parquet file, its columns cast to text.
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
