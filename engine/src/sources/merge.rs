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
        for path in paths {
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let ts = match open_reader(&path)?.read_into(&mut first)? {
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

    /// Reads file `idx`'s next record into its head and queues it; drops the reader (and
    /// its file handle) at the end.
    fn read_on(&mut self, idx: usize) -> Result<(), SourceError> {
        let file = &mut self.open[idx];
        if file.reader.read_into(&mut file.head)? {
            self.heap
                .push(Reverse((key(&file.head, file.last_ts), idx)));
        } else {
            file.reader = Box::new(Exhausted);
            file.head = Item::default();
        }
        Ok(())
    }

    /// The next record in event-time order across every file. The record stays valid
    /// until the next call.
    pub fn next_item(&mut self) -> Result<Option<&Item>, SourceError> {
        if let Some(idx) = self.handed_out.take() {
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
        self.handed_out = Some(idx);
        let file = &mut self.open[idx];
        if let Ok(r) = file.head.decoded() {
            file.last_ts = r.ts;
        }
        Ok(Some(&file.head))
    }
}

struct Exhausted;

impl RecordReader for Exhausted {
    fn read_into(&mut self, _item: &mut Item) -> Result<bool, SourceError> {
        Ok(false)
    }
}
