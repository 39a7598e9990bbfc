//! Time-bounded context entries (schedules, planned stops, downtime causes) with their
//! versions flattened: an entry is active at `t` when `start <= t < end` and its version
//! is the one valid at `t`. Lookups are a binary search plus a short backward scan.

/// One entry: the span it covers and the span of event time its version is valid in.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub start: i64,
    pub end: i64,
    pub valid_from: i64,
    pub valid_to: i64,
    pub value: T,
}

impl<T> Entry<T> {
    fn active_at(&self, t: i64) -> bool {
        t >= self.start && t < self.end && t >= self.valid_from && t < self.valid_to
    }
}

/// A boxed slice, 16 bytes: every station has three (most of them empty), which as two
/// `Vec`s each took 144 bytes of its entry in the index.
#[derive(Debug, Clone)]
pub struct IntervalIndex<T> {
    /// Sorted by `(start, end)`.
    entries: Box<[Indexed<T>]>,
}

#[derive(Debug, Clone)]
struct Indexed<T> {
    entry: Entry<T>,
    /// The largest `end` among this entry and those before it, to stop backward scans.
    max_end: i64,
}

impl<T> Default for IntervalIndex<T> {
    fn default() -> Self {
        IntervalIndex {
            entries: Box::default(),
        }
    }
}

impl<T> IntervalIndex<T> {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Builds the index from `(key, start, end, valid_from, value)` versions: versions of
    /// one key replace each other from their `valid_from` on.
    pub fn build<K: Ord + Clone>(mut versions: Vec<(K, i64, i64, i64, T)>) -> Self {
        versions.sort_by(|a, b| a.0.cmp(&b.0).then(a.3.cmp(&b.3)));
        let mut entries: Vec<Entry<T>> = Vec::with_capacity(versions.len());
        let mut iter = versions.into_iter().peekable();
        while let Some((key, start, end, valid_from, value)) = iter.next() {
            let valid_to = match iter.peek() {
                Some(next) if next.0 == key => next.3,
                _ => i64::MAX,
            };
            entries.push(Entry {
                start,
                end,
                valid_from,
                valid_to,
                value,
            });
        }
        entries.sort_by_key(|e| (e.start, e.end));
        let mut m = i64::MIN;
        let entries = (entries.into_iter())
            .map(|entry| {
                m = m.max(entry.end);
                Indexed { entry, max_end: m }
            })
            .collect();
        IntervalIndex { entries }
    }

    /// The active entry at `t` with the latest start (ties: the later-defined one).
    pub fn at(&self, t: i64) -> Option<&T> {
        let upto = self.entries.partition_point(|e| e.entry.start <= t);
        self.entries[..upto]
            .iter()
            .rev()
            .take_while(|e| e.max_end > t)
            .map(|e| &e.entry)
            .find(|e| e.active_at(t))
            .map(|e| &e.value)
    }

    /// Instants inside (from, to) where the answer of `at` may change.
    pub fn boundaries_in(&self, from: i64, to: i64, out: &mut Vec<i64>) {
        let upto = self.entries.partition_point(|e| e.entry.start < to);
        for indexed in self.entries[..upto].iter().rev() {
            if indexed.max_end <= from {
                break;
            }
            let e = &indexed.entry;
            for t in [e.start, e.end, e.valid_from, e.valid_to] {
                if t > from && t < to {
                    out.push(t);
                }
            }
        }
    }
}

/// Versions of a keyless setting (a station's or SKU's fields): the one valid at `t`.
#[derive(Debug, Clone)]
pub struct Versions<T> {
    /// Sorted by `valid_from`; the first is valid from the beginning of time. Boxed,
    /// so that it takes just its room.
    items: Box<[(i64, T)]>,
}

impl<T> Versions<T> {
    pub fn new(mut items: Vec<(i64, T)>) -> Self {
        items.sort_by_key(|(from, _)| *from);
        if let Some(first) = items.first_mut() {
            first.0 = i64::MIN;
        }
        Versions {
            items: items.into_boxed_slice(),
        }
    }

    pub fn at(&self, t: i64) -> &T {
        let i = self.items.partition_point(|(from, _)| *from <= t);
        &self.items[i.saturating_sub(1)].1
    }

    pub fn latest(&self) -> &T {
        &self.items.last().expect("versions are never empty").1
    }

    pub fn boundaries_in(&self, from: i64, to: i64, out: &mut Vec<i64>) {
        out.extend(
            self.items
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| *t > from && *t < to),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_entries_and_versions() {
        let idx = IntervalIndex::build(vec![
            ("a", 0, 100, i64::MIN, "a1"),
            ("a", 0, 50, 30, "a2"), // shortened from t=30 on
            ("b", 40, 200, i64::MIN, "b"),
        ]);
        assert_eq!(idx.at(10), Some(&"a1"));
        assert_eq!(idx.at(35), Some(&"a2"));
        assert_eq!(idx.at(45), Some(&"b"));
        assert_eq!(idx.at(60), Some(&"b"));
        assert_eq!(idx.at(200), None);
        let mut b = Vec::new();
        idx.boundaries_in(0, 100, &mut b);
        b.sort();
        b.dedup();
        assert_eq!(b, vec![30, 40, 50]);
        let v = Versions::new(vec![(50, 'b'), (10, 'a')]);
        assert_eq!((*v.at(-5), *v.at(49), *v.at(50)), ('a', 'a', 'b'));
    }
}
