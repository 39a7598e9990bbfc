//! A station's records inside the retained history, sorted by `(ts, seq, content)`.
//! A `Vec` with a moving head: appends are the common case, old records leave from the
//! front, and the slice the walks read is always contiguous.

use serde::{Deserialize, Serialize};

use crate::record::Rec;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventLog {
    records: Vec<Rec>,
    /// Records before this index are pruned, awaiting compaction.
    head: usize,
}

impl EventLog {
    pub fn as_slice(&self) -> &[Rec] {
        &self.records[self.head..]
    }

    /// Inserts in order; equal keys keep arrival order (they are equal records).
    pub fn insert(&mut self, rec: Rec) {
        let key = rec.order_key();
        if self
            .records
            .last()
            .is_none_or(|last| last.order_key() <= key)
        {
            self.records.push(rec);
        } else {
            let at = self.head + self.as_slice().partition_point(|r| r.order_key() <= key);
            self.records.insert(at, rec);
        }
    }

    /// Drops records before `ts`, calling `removed` for each.
    pub fn prune_before(&mut self, ts: i64, mut removed: impl FnMut(&Rec)) {
        if self.as_slice().first().is_none_or(|r| r.ts >= ts) {
            return;
        }
        let n = self.as_slice().partition_point(|r| r.ts < ts);
        for r in &self.records[self.head..self.head + n] {
            removed(r);
        }
        self.head += n;
        if self.head > 1024 && self.head * 2 > self.records.len() {
            self.records.drain(..self.head);
            self.head = 0;
        }
    }
}
