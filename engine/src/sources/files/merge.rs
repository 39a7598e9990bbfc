//! Many input files as one stream in event-time order: a k-way merge on each file's next
//! record, keeping every file's own order (a buffer a device delivered late stays late).
//! A file is opened when the merge reaches its first record, so a folder of hourly files
//! holds only the overlapping ones open.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use super::{open_reader, Item, RecordReader, SourceError};

struct Open {
    reader: Box<dyn RecordReader>,
    /// This file's next record, valid while the file is in the heap.
    head: Item,
    /// Event time of this file's last decodable record: rejected records keep their place.
    last_ts: i64,
}

pub struct MergedFiles {
    /// Files not opened yet, by the event time of their first record (latest first).
    waiting: Vec<(i64, PathBuf)>,
    open: Vec<Open>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// The file whose head the caller holds; it reads on at the next call.
    handed_out: Option<usize>,
    pub bytes: u64,
    pub files: usize,
}

fn key(item: &Item, last_ts: i64) -> i64 {
    item.decoded().map_or(last_ts, |r| r.ts)
}

impl MergedFiles {
    pub fn new(paths: Vec<PathBuf>) -> Result<Self, SourceError> {
        let mut waiting = Vec::with_capacity(paths.len());
        let mut bytes = 0;
        let mut first = Item::default();
        // One file needs no ordering, and is opened once: it may be a pipe.
        let alone = paths.len() == 1;
        for path in paths {
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let ts = match !alone && open_reader(&path)?.read_into(&mut first)? {
                true => key(&first, i64::MIN),
                false => i64::MIN,
            };
            waiting.push((ts, path));
        }
        waiting.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        Ok(MergedFiles {
            files: waiting.len(),
            waiting,
            open: Vec::new(),
            heap: BinaryHeap::new(),
            handed_out: None,
            bytes,
        })
    }

    fn open_next(&mut self) -> Result<(), SourceError> {
        let Some((_, path)) = self.waiting.pop() else {
            return Ok(());
        };
        let idx = self.open.len();
        self.open.push(Open {
            reader: open_reader(&path)?,
            head: Item::default(),
            last_ts: i64::MIN,
        });
        self.read_on(idx)
    }

    /// Reads file `idx`'s next record into its head; at the end drops the reader (and
    /// its file handle) and says so.
    fn read_head(&mut self, idx: usize) -> Result<bool, SourceError> {
        let file = &mut self.open[idx];
        let more = file.reader.read_into(&mut file.head)?;
        if !more {
            file.reader = Box::new(Exhausted);
            file.head = Item::default();
        }
        Ok(more)
    }

    /// Reads file `idx`'s next record into its head and queues it.
    fn read_on(&mut self, idx: usize) -> Result<(), SourceError> {
        if self.read_head(idx)? {
            let file = &self.open[idx];
            self.heap
                .push(Reverse((key(&file.head, file.last_ts), idx)));
        }
        Ok(())
    }

    /// The next record in event-time order across every file, with its original text.
    /// Both stay valid until the next call.
    pub fn next_item(&mut self) -> Result<Option<(&Item, &[u8])>, SourceError> {
        if let Some(idx) = self.handed_out.take() {
            // The only file left needs no merge: its next record is the next (a single
            // input file goes this way from start to end, without a heap push and pop
            // per record).
            if self.heap.is_empty() && self.waiting.is_empty() {
                return match self.read_head(idx)? {
                    true => Ok(Some(self.hand_out(idx))),
                    false => Ok(None),
                };
            }
            self.read_on(idx)?;
        }
        loop {
            let frontier = self.heap.peek().map(|Reverse((ts, _))| *ts);
            match (self.waiting.last(), frontier) {
                (Some((first, _)), Some(f)) if *first <= f => self.open_next()?,
                (Some(_), None) => self.open_next()?,
                _ => break,
            }
        }
        let Some(Reverse((_, idx))) = self.heap.pop() else {
            return Ok(None);
        };
        Ok(Some(self.hand_out(idx)))
    }

    /// File `idx`'s head and its text, to the caller until the next call.
    fn hand_out(&mut self, idx: usize) -> (&Item, &[u8]) {
        self.handed_out = Some(idx);
        let file = &mut self.open[idx];
        if let Ok(r) = file.head.decoded() {
            file.last_ts = r.ts;
        }
        (&file.head, file.reader.original(&file.head))
    }
}

struct Exhausted;

impl RecordReader for Exhausted {
    fn read_into(&mut self, _item: &mut Item) -> Result<bool, SourceError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, stamps: &[i64]) -> PathBuf {
        let path = dir.path().join(name);
        let lines: Vec<String> = stamps
            .iter()
            .map(|ts| format!(r#"{{"station":"S","ts":{ts},"rssi":-50}}"#))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    fn merged(paths: Vec<PathBuf>) -> Vec<(String, i64)> {
        let mut files = MergedFiles::new(paths).unwrap();
        let mut out = Vec::new();
        while let Some((item, text)) = files.next_item().unwrap() {
            let ts = item.decoded().unwrap().ts;
            assert!(text.starts_with(b"{") && text.ends_with(b"}"));
            let name = PathBuf::from(&*item.position.file);
            out.push((name.file_name().unwrap().to_string_lossy().into(), ts));
        }
        assert!(
            files.next_item().unwrap().is_none(),
            "the end stays the end"
        );
        out
    }

    #[test]
    fn files_interleave_by_event_time_and_the_last_one_streams_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(&dir, "a.jsonl", &[1, 4, 5, 9]);
        let b = file(&dir, "b.jsonl", &[2, 3, 6, 20, 21, 22]);
        let c = file(&dir, "c.jsonl", &[30, 31]);
        let got = merged(vec![a, b, c]);
        let order: Vec<i64> = got.iter().map(|(_, ts)| *ts).collect();
        assert_eq!(order, [1, 2, 3, 4, 5, 6, 9, 20, 21, 22, 30, 31]);
        assert!(got[..7]
            .iter()
            .all(|(f, ts)| (f == "a.jsonl") == [1, 4, 5, 9].contains(ts)));
        assert!(got[7..10].iter().all(|(f, _)| f == "b.jsonl"));
        assert!(got[10..].iter().all(|(f, _)| f == "c.jsonl"));
    }

    #[test]
    fn a_single_file_keeps_its_own_order_late_records_included() {
        let dir = tempfile::tempdir().unwrap();
        let only = file(&dir, "only.jsonl", &[5, 7, 6, 1, 8]);
        let got: Vec<i64> = merged(vec![only]).iter().map(|(_, ts)| *ts).collect();
        assert_eq!(got, [5, 7, 6, 1, 8]);
    }
}
