//! JSON Lines files.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lines::{trimmed, Line, Lines};
use super::{too_long, Item, RecordReader, SourceError};
use crate::signal::decode_json_into;

/// JSON Lines; a record's original text stays in the line buffer (not copied) until
/// the next read.
pub struct JsonLines {
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

impl JsonLines {
    /// Reads `input`, a file named `path`.
    pub fn new(input: Box<dyn Read>, path: &Path) -> Self {
        JsonLines {
            lines: Lines::new(input, 1 << 16),
            text: 0..0,
            file: path.display().to_string().into(),
            line: 0,
            path: path.to_path_buf(),
            overlong: None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::lines::Lines;
    use crate::reader::RecordReader;
    use crate::signal::{Rejection, SignalRecord};

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
                    let decoded = crate::signal::decode_json(original.as_bytes(), None, None);
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
}
