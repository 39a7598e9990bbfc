//! Long CSV text.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::lines::{Line, Lines};
use super::{too_long, Row, RowSource, SourceError};
use crate::dead_letter::RejectReason;

/// Long CSV, a record a line: read through `Lines` (so no field can swallow the rest of
/// the file) and split by `csv_core`. A row whose quotes do not close on its own line, or
/// that is not UTF-8, is malformed and dead-lettered with its text; fields spanning lines,
/// which RFC 4180 allows, are not read (no long-format value holds a newline).
pub struct CsvRows {
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
    pub fn new(input: Box<dyn Read>, path: &Path) -> Result<Self, SourceError> {
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

#[cfg(test)]
mod csv_tests {
    use super::*;
    use crate::reader::{Item, LongReader, RecordReader};
    use std::sync::Arc;

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
