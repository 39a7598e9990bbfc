//! A station's state snapshots by minute, oldest first: one a minute near the horizon,
//! sparser further back. Kept as two rings, the minutes and the snapshots, rather than a
//! B-tree: a refresh looks up the newest minutes a few times, adds one at the back and
//! drops one near the front, and with a thousand stations each look-up is a cache miss
//! a line. The minutes of a station fit in a few lines, the newest are found by
//! arithmetic (one a minute), and nothing is allocated or shifted but the few sparse
//! snapshots in front of a dropped one. Checkpoints hold them as a map by minute.

use std::collections::VecDeque;
use std::ops::{Index, Range};

use stationflow_schemas::time::MINUTE_MS;

use crate::rings;

/// Rings this short grow by one snapshot when full, not by doubling: a station whose
/// records come in order holds two for the first hour (room for four with doubling, at
/// 32 bytes each), and about 26 over a day (room for 32).
const GROWS_BY_ONE_BELOW: usize = 32;

#[derive(Debug, Clone)]
pub struct Snapshots<T> {
    minutes: VecDeque<i64>,
    snapshots: VecDeque<T>,
}

impl<T> Default for Snapshots<T> {
    fn default() -> Self {
        Snapshots {
            minutes: VecDeque::new(),
            snapshots: VecDeque::new(),
        }
    }
}

impl<T> Snapshots<T> {
    /// The earliest minute held.
    pub fn first(&self) -> Option<i64> {
        self.minutes.front().copied()
    }

    pub fn get(&self, minute: i64) -> Option<&T> {
        self.position(minute).ok().map(|i| &self.snapshots[i])
    }

    /// The latest minute held at or before `t`.
    pub fn at_or_before(&self, t: i64) -> Option<i64> {
        match self.position(t) {
            Ok(i) => Some(self.minutes[i]),
            Err(i) => i.checked_sub(1).map(|i| self.minutes[i]),
        }
    }

    /// Adds the snapshot of `minute`, or replaces the one held.
    pub fn insert(&mut self, minute: i64, snapshot: T) {
        match self.position(minute) {
            Ok(i) => self.snapshots[i] = snapshot,
            Err(i) => {
                rings::room_for_one(&mut self.minutes, GROWS_BY_ONE_BELOW);
                rings::room_for_one(&mut self.snapshots, GROWS_BY_ONE_BELOW);
                self.minutes.insert(i, minute);
                self.snapshots.insert(i, snapshot);
            }
        }
    }

    pub fn remove(&mut self, minute: i64) {
        if let Ok(i) = self.position(minute) {
            self.minutes.remove(i);
            self.snapshots.remove(i);
        }
    }

    /// Drops every snapshot before `minute`.
    pub fn remove_before(&mut self, minute: i64) {
        while self.minutes.front().is_some_and(|m| *m < minute) {
            self.minutes.pop_front();
            self.snapshots.pop_front();
        }
    }

    /// Drops the snapshots of the minutes in `span` that `keep` does not keep.
    pub fn thin(&mut self, span: Range<i64>, keep: impl Fn(i64) -> bool) {
        let lo = self.minutes.partition_point(|m| *m < span.start);
        let hi = self.minutes.partition_point(|m| *m < span.end);
        for i in (lo..hi).rev() {
            if !keep(self.minutes[i]) {
                self.minutes.remove(i);
                self.snapshots.remove(i);
            }
        }
    }

    /// Where `minute` is held, or where it would go. The newest minutes are one a minute
    /// apart and looked up most: tried by arithmetic from the back before a search.
    fn position(&self, minute: i64) -> Result<usize, usize> {
        if let Some(&last) = self.minutes.back() {
            let back = (last.saturating_sub(minute) / MINUTE_MS) as usize;
            if minute <= last && back < self.minutes.len() {
                let i = self.minutes.len() - 1 - back;
                if self.minutes[i] == minute {
                    return Ok(i);
                }
            }
        }
        self.minutes.binary_search(&minute)
    }
}

impl<T> Index<i64> for Snapshots<T> {
    type Output = T;

    /// The snapshot of `minute`, which the caller knows is held.
    fn index(&self, minute: i64) -> &T {
        match self.get(minute) {
            Some(snapshot) => snapshot,
            None => panic!("no snapshot at {minute}"),
        }
    }
}

impl<T> Snapshots<T> {
    /// Every snapshot with its minute, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &T)> {
        self.minutes.iter().copied().zip(&self.snapshots)
    }
}

/// From snapshots by minute, in order (as a checkpoint's map gives them).
impl<T> FromIterator<(i64, T)> for Snapshots<T> {
    fn from_iter<I: IntoIterator<Item = (i64, T)>>(by_minute: I) -> Self {
        let mut rings = Snapshots::default();
        for (minute, snapshot) in by_minute {
            rings.insert(minute, snapshot);
        }
        rings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i64),
        Remove(i64),
        RemoveBefore(i64),
        Thin(i64, i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let minute = (0i64..90).prop_map(|m| m * MINUTE_MS);
        prop_oneof![
            4 => minute.clone().prop_map(Op::Insert),
            1 => minute.clone().prop_map(Op::Remove),
            1 => minute.clone().prop_map(Op::RemoveBefore),
            1 => (minute.clone(), minute, 1i64..20).prop_map(|(a, b, n)| Op::Thin(a, b, n)),
        ]
    }

    proptest! {
        /// Whatever is added and dropped, look-ups answer as a `BTreeMap` would, and a
        /// checkpoint reads back the same.
        #[test]
        fn answers_as_a_map_would(ops in proptest::collection::vec(op(), 0..200)) {
            let mut rings = Snapshots::default();
            let mut map = BTreeMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(m) => {
                        rings.insert(m, n);
                        map.insert(m, n);
                    }
                    Op::Remove(m) => {
                        rings.remove(m);
                        map.remove(&m);
                    }
                    Op::RemoveBefore(m) => {
                        rings.remove_before(m);
                        map.retain(|k, _| *k >= m);
                    }
                    Op::Thin(a, b, every) => {
                        let keep = |k: i64| (k / MINUTE_MS) % every == 0;
                        rings.thin(a..b, keep);
                        map.retain(|k, _| !(a..b).contains(k) || keep(*k));
                    }
                }
                prop_assert_eq!(rings.first(), map.keys().next().copied());
                for t in (-1..=91).map(|m| m * MINUTE_MS).chain([5, MINUTE_MS + 1]) {
                    prop_assert_eq!(rings.get(t), map.get(&t));
                    let before = map.range(..=t).next_back().map(|(k, _)| *k);
                    prop_assert_eq!(rings.at_or_before(t), before);
                }
            }
            prop_assert!(rings.iter().eq(map.iter().map(|(k, v)| (*k, v))));
            let back: Snapshots<usize> = map.clone().into_iter().collect();
            prop_assert!(back.minutes.iter().eq(map.keys()));
            prop_assert!(back.snapshots.iter().eq(map.values()));
        }
    }
}
