//! Long rows (`station,ts,signal,value`) gathered into records: consecutive rows of one
//! station and `ts` are one record.

use std::sync::Arc;

use super::{Item, Position, RecordReader, SourceError};
use crate::dead_letter::RejectReason;
use crate::signal::{reading_from_text, ts_from_text, Reading, Rejection, SignalRecord};

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
pub struct LongReader<S: RowSource> {
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
pub const MAX_ROWS_PER_RECORD: usize = 1024;

impl<S: RowSource> LongReader<S> {
    pub fn new(rows: S, file: Arc<str>) -> Self {
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
            None => ts_from_text(ts).and_then(|ts| {
                let record = SignalRecord {
                    station: station.to_string(),
                    ts,
                    seq: None,
                    readings: readings.into_iter().collect(),
                    unknown_keys: unknown,
                };
                record.check_limits().map(|()| record)
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows(std::vec::IntoIter<Row>);

    impl RowSource for Rows {
        fn next_row(&mut self) -> Result<Option<Row>, SourceError> {
            Ok(self.0.next())
        }
    }

    fn reasons(rows: &[(&str, &str, &str, &str)]) -> Vec<String> {
        let rows: Vec<Row> = rows
            .iter()
            .enumerate()
            .map(|(i, (station, ts, signal, value))| Row::Values {
                line: i as u64 + 1,
                station: station.to_string(),
                ts: ts.to_string(),
                signal: signal.to_string(),
                value: value.to_string(),
            })
            .collect();
        let mut reader = LongReader::new(Rows(rows.into_iter()), "f.parquet".into());
        let mut item = Item::default();
        let mut out = Vec::new();
        while reader.read_into(&mut item).unwrap() {
            out.push(match item.decoded() {
                Ok(_) => "ok".to_string(),
                Err(e) => e.reason.as_str().to_string(),
            });
        }
        out
    }

    /// Found by the `signal_files` fuzz target: long rows skipped the length limits that
    /// JSON payloads keep.
    #[test]
    fn long_rows_keep_the_limits_of_every_source() {
        let long_station = "S".repeat(211);
        let long_code = "E".repeat(300);
        let ts = "2026-03-02T08:00:00Z";
        let got = reasons(&[
            (&long_station, ts, "productive", "1"),
            ("S1", ts, "error_code", &long_code),
            (
                "S1",
                "2026-03-02T08:00:01Z",
                "production_complete_good",
                "1e300",
            ),
            ("S1", "2026-03-02T08:00:02Z", "productive", "1"),
        ]);
        assert_eq!(got, ["bad_value", "bad_value", "bad_value", "ok"]);
    }
}
