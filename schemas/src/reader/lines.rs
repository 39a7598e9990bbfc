//! Lines of a byte stream, none held longer than `MAX_LINE_BYTES`.

use std::io::Read;
use std::ops::Range;

use crate::signal::{decode_usual_json_line, SignalRecord, MAX_RECORD_BYTES};

/// `range` of `buf` without ASCII whitespace at either end.
pub(crate) fn trimmed(buf: &[u8], range: Range<usize>) -> Range<usize> {
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
pub(crate) enum Line {
    /// Where it lies in the buffer, without its `\n`.
    Whole(Range<usize>),
    /// Longer than `MAX_LINE_BYTES`: its first bytes and its length; the rest was skipped.
    TooLong { prefix: Vec<u8>, len: u64 },
}

/// Lines of a byte stream, found with `memchr` in a buffer of its own (a line longer than
/// the buffer grows it, up to `MAX_LINE_BYTES`). The last line needs no newline.
pub(crate) struct Lines {
    input: Box<dyn Read>,
    pub(crate) buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl Lines {
    pub(crate) fn new(input: Box<dyn Read>, capacity: usize) -> Self {
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
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        Ok(match self.next_line_range()? {
            Some(Line::Whole(line)) => Some(&self.buf[line]),
            Some(Line::TooLong { .. }) => Some(b"(too long)"),
            None => None,
        })
    }

    /// The next line when it is whole in the buffer and in the usual layout, decoded into
    /// `record` in the same pass that finds its end (no separate newline search).
    pub(crate) fn usual_line(&mut self, record: &mut SignalRecord) -> Option<Range<usize>> {
        let len = decode_usual_json_line(&self.buf[self.start..self.end], record)?;
        let line = self.start..self.start + len;
        self.start += len + 1;
        Some(line)
    }

    /// Where the next line (without its `\n`) lies in `buf`, valid until the next call;
    /// `None` at the end.
    pub(crate) fn next_line_range(&mut self) -> std::io::Result<Option<Line>> {
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
