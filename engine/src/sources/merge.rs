//! Many input files as one stream in event-time order: a k-way merge on each file's next
//! record, keeping every file's own order (a buffer a device delivered late stays late).
//! A file is opened when the merge reaches its first record, so a folder of hourly files
//! holds only the overlapping ones open.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use super::files::{open_reader, Item, RecordReader, SourceError};

struct Open {
    reader: Box<dyn RecordReader>,
    head: Option<Item>,
    /// Event time of this file's last decodable record: rejected records keep their place.
    last_ts: i64,
}

pub struct MergedFiles {
    /// Files not opened yet, by the event time of their first record (latest first).
    waiting: Vec<(i64, PathBuf)>,
    open: Vec<Open>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// Buffers of handled records, reused for the next records' original text.
    spare: Vec<Vec<u8>>,
    pub bytes: u64,
    pub files: usize,
}

fn key(item: &Item, last_ts: i64) -> i64 {
    item.decoded.as_ref().map_or(last_ts, |r| r.ts)
}

impl MergedFiles {
    pub fn new(paths: Vec<PathBuf>) -> Result<Self, SourceError> {
        let mut waiting = Vec::with_capacity(paths.len());
        let mut bytes = 0;
        for path in paths {
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let first = open_reader(&path)?.next_item(&mut Vec::new())?;
            let ts = first.as_ref().map_or(i64::MIN, |i| key(i, i64::MIN));
            waiting.push((ts, path));
        }
        waiting.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        Ok(MergedFiles {
            files: waiting.len(),
            waiting,
            open: Vec::new(),
            heap: BinaryHeap::new(),
            spare: Vec::new(),
            bytes,
        })
    }

    fn open_next(&mut self) -> Result<(), SourceError> {
        let Some((_, path)) = self.waiting.pop() else {
            return Ok(());
        };
        let mut reader = open_reader(&path)?;
        let head = reader.next_item(&mut self.spare)?;
        let idx = self.open.len();
        let last_ts = head.as_ref().map_or(i64::MIN, |i| key(i, i64::MIN));
        if let Some(h) = &head {
            self.heap.push(Reverse((key(h, last_ts), idx)));
        }
        self.open.push(Open {
            reader,
            head,
            last_ts,
        });
        Ok(())
    }

    /// Hands a handled record back, so its buffer serves the next one.
    pub fn recycle(&mut self, item: Item) {
        if self.spare.len() < 64 {
            self.spare.push(item.original);
        }
    }

    /// The next record in event-time order across every file.
    pub fn next_item(&mut self) -> Result<Option<Item>, SourceError> {
        // One file left and none waiting: no merge needed, read straight through.
        if self.waiting.is_empty() && self.heap.len() == 1 {
            let idx = self
                .heap
                .peek()
                .map(|Reverse((_, i))| *i)
                .unwrap_or_default();
            let file = &mut self.open[idx];
            if let Some(head) = file.head.take() {
                return Ok(Some(head));
            }
            return file.reader.next_item(&mut self.spare);
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
        let file = &mut self.open[idx];
        let item = file.head.take();
        if let Some(Ok(r)) = item.as_ref().map(|i| &i.decoded) {
            file.last_ts = r.ts;
        }
        file.head = file.reader.next_item(&mut self.spare)?;
        if let Some(h) = &file.head {
            let k = key(h, file.last_ts);
            self.heap.push(Reverse((k, idx)));
        } else {
            // Done: drop the reader (and its file handle) now.
            file.reader = Box::new(Exhausted);
        }
        Ok(item)
    }
}

struct Exhausted;

impl RecordReader for Exhausted {
    fn next_item(&mut self, _spare: &mut Vec<Vec<u8>>) -> Result<Option<Item>, SourceError> {
        Ok(None)
    }
}
