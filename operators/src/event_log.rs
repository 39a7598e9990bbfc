//! A station's records inside the retained history, sorted by `(ts, seq, content)`.
//! The records from the horizon's block on are kept as records (`hot`; two minutes more
//! for half an hour after a record came before the horizon's block); older ones are
//! encoded into compact blocks (varint deltas, about 7 bytes a record instead of 64), so
//! the allowed lateness costs little memory. A block begins at a multiple of `BLOCK_MS`
//! and holds the records up to the next block's start; a station with a record or two a
//! minute fills one over many such spans. A walk that reaches back decodes the blocks it
//! needs; a late record re-encodes only its block.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::Range;

use smallvec::SmallVec;
use stationflow_schemas::time::MINUTE_MS;

use crate::checkpoint::format2;
use crate::maybe_time::MaybeTime;
use crate::record::{check_error_id, ErrorCodes, Obs, Rec};
use crate::rings;
use crate::varint::{get_varint, get_word, unzigzag, zigzag, Writer};

/// The span of event time cooled at a time: blocks begin at its multiples.
pub const BLOCK_MS: i64 = 2 * 60_000;

/// The last block takes a span's records while it would then hold at most this many:
/// at a record or two a minute, a block a span (32 bytes, and an allocation for three
/// records) took more room than the records.
const MERGED_AT_MOST: usize = 32;

/// A cold ring this short grows by one block when full, not by doubling: a station
/// whose records are sparse holds one or two blocks.
const COLD_GROWS_BY_ONE_BELOW: usize = 8;

/// How far behind the horizon records stay hot while a station sends records that late
/// (inserting one into an encoded block decodes and re-encodes the block).
const LATE_HOT_MS: i64 = 2 * MINUTE_MS;
/// A station whose records have come in order (none before the horizon's block) for
/// this long keeps only the horizon's block hot: less to hold, shift and reload.
const IN_ORDER_AFTER_MS: i64 = 30 * MINUTE_MS;

/// 32 bytes with its bytes boxed (a `Vec` would make it 40): a station holds one for
/// every two minutes of its allowed lateness that had records, or for every
/// `MERGED_AT_MOST` records where they are sparser. It holds the records from `start`
/// (a multiple of `BLOCK_MS`) to the next block's start, the last block's to `hot_from`.
#[derive(Debug, Clone, Default)]
struct Block {
    start: i64,
    count: u32,
    bytes: Box<[u8]>,
}

/// `repr(C)`, its hot part last: inserting reads and writes only that part, in the
/// cache line that `StationOp`'s layout gives it.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct EventLog {
    cold: VecDeque<Block>,
    hot: Vec<Rec>,
    /// Records at or after this instant are hot; a multiple of `BLOCK_MS`.
    hot_from: i64,
    /// No hot record is later than this. A record after it is appended without reading
    /// the hot log's last record: with a thousand stations interleaved, that record is
    /// out of cache each time a batch reaches its station, and the append only writes.
    hot_ts_bound: i64,
    /// The horizon's block at the last `cool`: a record before it came late.
    horizon_block: i64,
    /// Records stay hot `LATE_HOT_MS` behind the horizon until the horizon's block
    /// reaches this (set by a record that came late). A station starts as one whose
    /// records come in order: at a million stations, two minutes more of records each
    /// took hundreds of megabytes, and most stations never send one late.
    late_margin_until: MaybeTime,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            cold: VecDeque::new(),
            hot: Vec::new(),
            hot_from: i64::MIN,
            hot_ts_bound: i64::MIN,
            horizon_block: i64::MIN,
            late_margin_until: MaybeTime::NONE,
        }
    }
}

fn block_start(ts: i64) -> i64 {
    ts.div_euclid(BLOCK_MS) * BLOCK_MS
}

/// A hot log this short grows by one record when full, not by doubling: a station's
/// hot log holds a few records, and doubling left most of 100,000 stations with room
/// for eight (512 bytes).
const GROWS_BY_ONE_BELOW: usize = 16;

fn room_for_one(hot: &mut Vec<Rec>) {
    if hot.len() == hot.capacity() && hot.len() < GROWS_BY_ONE_BELOW {
        hot.reserve_exact(1);
    }
}

fn insert_sorted(records: &mut Vec<Rec>, rec: Rec) {
    let key = rec.order_key();
    if records.last().is_none_or(|last| last.order_key() <= key) {
        records.push(rec);
    } else {
        let at = records.partition_point(|r| r.order_key() <= key);
        records.insert(at, rec);
    }
}

impl EventLog {
    /// Where the part an insert touches begins (`StationOp`'s layout test).
    #[cfg(test)]
    pub(crate) const HOT_PART_OFFSET: usize = std::mem::offset_of!(EventLog, hot);

    /// Inserts a record in order, taking it out of `rec` (left empty). Taken only where
    /// it is stored, the record goes from the caller's slot straight into the log: moved
    /// in by value, it was copied to the stack and read back in other widths than it was
    /// written, which made that read wait for every earlier store, the last record's
    /// append to another station's log (a cache miss) among them.
    pub fn insert(&mut self, rec: &mut Rec, errors: &ErrorCodes) {
        if rec.ts < self.horizon_block {
            self.late_margin_until = MaybeTime::at(self.horizon_block + IN_ORDER_AFTER_MS);
        }
        if rec.ts >= self.hot_from {
            let ts = rec.ts;
            room_for_one(&mut self.hot);
            if ts > self.hot_ts_bound {
                self.hot.push(std::mem::take(rec));
                self.hot_ts_bound = ts;
            } else {
                insert_sorted(&mut self.hot, std::mem::take(rec));
                self.hot_ts_bound = self.hot.last().map_or(ts, |r| r.ts);
            }
            return;
        }
        let rec = std::mem::take(rec);
        let at = match self.holding(rec.ts) {
            Some(at) => at,
            None => {
                self.cold.push_front(Block {
                    start: block_start(rec.ts),
                    ..Block::default()
                });
                0
            }
        };
        let block = &mut self.cold[at];
        let mut records = decode(block, errors);
        insert_sorted(&mut records, rec);
        *block = encode(block.start, &records);
    }

    /// The cold block that holds `ts` (before `hot_from`), if one begins at or before it.
    fn holding(&self, ts: i64) -> Option<usize> {
        self.cold.partition_point(|b| b.start <= ts).checked_sub(1)
    }

    /// Asks the processor for the lines the next `count` appended records go to (as far
    /// as the hot log's capacity: beyond it, an append moves the log anyway).
    pub fn prefetch_appends(&self, count: usize) {
        let (len, capacity) = (self.hot.len(), self.hot.capacity());
        let next = self.hot.as_ptr().wrapping_add(len);
        for k in 0..count.min(capacity - len) {
            crate::prefetch::for_writing(next.wrapping_add(k));
        }
    }

    /// Whether a record without `seq` with the same `ts` and observations is here.
    pub fn contains_same(&self, rec: &Rec, errors: &ErrorCodes) -> bool {
        let same = |r: &Rec| r.ts == rec.ts && r.seq().is_none() && r.obs == rec.obs;
        if rec.ts >= self.hot_from {
            if rec.ts > self.hot_ts_bound {
                return false;
            }
            let lo = first_at_or_after(&self.hot, rec.ts);
            return self.hot[lo..]
                .iter()
                .take_while(|r| r.ts == rec.ts)
                .any(same);
        }
        self.holding(rec.ts)
            .is_some_and(|at| decode(&self.cold[at], errors).iter().any(same))
    }

    /// The first record's `ts` at or after `ts`.
    pub fn first_ts_at_or_after(&self, ts: i64, errors: &ErrorCodes) -> Option<i64> {
        if ts < self.hot_from {
            let first = self.holding(ts).unwrap_or(0);
            for b in self.cold.range(first..) {
                if let Some(r) = decode(b, errors).iter().find(|r| r.ts >= ts) {
                    return Some(r.ts);
                }
            }
        }
        let lo = first_at_or_after(&self.hot, ts);
        self.hot.get(lo).map(|r| r.ts)
    }

    /// The records from `from` on: the decoded cold part (possibly empty) and the hot
    /// slice. Every minute lies wholly in one of the two.
    pub fn from(&self, from: i64, errors: &ErrorCodes) -> (Vec<Rec>, &[Rec]) {
        let mut cold = Vec::new();
        if from < self.hot_from {
            let first = self.holding(from).unwrap_or(0);
            for b in self.cold.range(first..) {
                cold.extend(decode(b, errors).into_iter().filter(|r| r.ts >= from));
            }
        }
        let lo = first_at_or_after(&self.hot, from);
        (cold, &self.hot[lo..])
    }

    /// The instant from which records are hot.
    pub fn hot_from(&self) -> i64 {
        self.hot_from
    }

    /// Encodes the hot records before the horizon's block into blocks, or before the
    /// block `LATE_HOT_MS` earlier while the station's records come late.
    pub fn cool(&mut self, horizon: i64) {
        self.horizon_block = block_start(horizon);
        let late_until = self.late_margin_until.get().unwrap_or(i64::MIN);
        let margin = if self.horizon_block < late_until {
            LATE_HOT_MS
        } else {
            0
        };
        let until = block_start(horizon - margin);
        if until <= self.hot_from {
            return;
        }
        // Counted, not searched for: the encoder reads these records next, and a scan
        // brings their lines in as a stream where a search's probes miss one by one.
        let n = count_before(&self.hot, until);
        let moving = &self.hot[..n];
        let mut i = 0;
        while i < moving.len() {
            let start = block_start(moving[i].ts);
            let j = i + count_before(&moving[i..], start + BLOCK_MS);
            // Hot records never precede `hot_from`: they follow the last block's.
            match self.cold.back_mut() {
                Some(last) if last.count as usize + (j - i) <= MERGED_AT_MOST => {
                    append(last, &moving[i..j]);
                }
                _ => {
                    rings::room_for_one(&mut self.cold, COLD_GROWS_BY_ONE_BELOW);
                    self.cold.push_back(encode(start, &moving[i..j]));
                }
            }
            i = j;
        }
        self.hot.drain(..n);
        // A short log gives back the room of the records it cooled: otherwise each
        // station kept room for the most records it ever held hot (at a record or two a
        // minute, about twice what it holds between refreshes).
        if self.hot.capacity() <= GROWS_BY_ONE_BELOW {
            self.hot.shrink_to_fit();
        }
        self.hot_from = until;
    }

    /// The log as a checkpoint keeps it.
    pub fn save(&self) -> format2::Records {
        format2::Records {
            blocks: (self.cold.iter())
                .map(|b| format2::Block {
                    start: b.start,
                    count: b.count,
                    bytes: b.bytes.to_vec(),
                })
                .collect(),
            hot: self.hot.iter().map(Rec::save).collect(),
            hot_from: self.hot_from,
            horizon_block: self.horizon_block,
            late_margin_until: self.late_margin_until.get(),
        }
    }

    /// The log of a checkpoint (`check_saved` passed), whose error codes are `errors`.
    pub fn load(saved: format2::Records, errors: &ErrorCodes) -> EventLog {
        let mut hot: Vec<Rec> = (saved.hot.into_iter())
            .map(|r| Rec::load(r, errors))
            .collect();
        // Sorted again: the order of records at one instant follows from their content.
        hot.sort_by_key(Rec::order_key);
        let cold = (saved.blocks.into_iter())
            .map(|b| Block {
                start: b.start,
                count: b.count,
                bytes: b.bytes.into_boxed_slice(),
            })
            .collect();
        EventLog {
            cold,
            hot,
            hot_from: saved.hot_from,
            hot_ts_bound: i64::MAX,
            horizon_block: saved.horizon_block,
            late_margin_until: MaybeTime::new(saved.late_margin_until),
        }
    }

    /// Drops the records of the `BLOCK_MS` spans wholly before `ts`, calling `removed`
    /// for each. By span, not by block: what is kept does not depend on how spans were
    /// gathered into blocks (which follows the rounds a driver refreshed in).
    pub fn prune_before(&mut self, ts: i64, errors: &ErrorCodes, mut removed: impl FnMut(&Rec)) {
        let cut = block_start(ts);
        while self.cold.front().is_some_and(|b| b.start < cut) {
            let next = self.cold.get(1).map_or(self.hot_from, |b| b.start);
            let Some(front) = self.cold.pop_front() else {
                break;
            };
            let records = decode(&front, errors);
            if next <= cut {
                records.iter().for_each(&mut removed);
                continue;
            }
            let k = count_before(&records, cut);
            records[..k].iter().for_each(&mut removed);
            if k < records.len() {
                self.cold.push_front(encode(cut, &records[k..]));
            }
            break;
        }
    }
}

/// Index of the first record at or after `ts`. A walk starts near the end of the log
/// and reads every record from there on: scanning back from the tail brings those lines
/// in as a stream for it, where a binary search's probes each wait for the last one's
/// cache miss.
/// Past `SCAN_BACK` records, a walk far behind the tail, it gallops and searches.
fn first_at_or_after(records: &[Rec], ts: i64) -> usize {
    const SCAN_BACK: usize = 512;
    let near = records.len().saturating_sub(SCAN_BACK);
    match records[near..].iter().rposition(|r| r.ts < ts) {
        Some(i) => near + i + 1,
        None => galloped(&records[..near], ts),
    }
}

/// `first_at_or_after` by galloping back from the tail, then a binary search.
fn galloped(records: &[Rec], ts: i64) -> usize {
    let mut step = 1;
    let mut hi = records.len();
    while hi > 0 {
        let lo = hi.saturating_sub(step);
        if records[lo].ts < ts {
            return lo + records[lo..hi].partition_point(|r| r.ts < ts);
        }
        hi = lo;
        step *= 2;
    }
    0
}

/// How many records at the front of `records` precede `ts`, counted from the front.
fn count_before(records: &[Rec], ts: i64) -> usize {
    records.iter().take_while(|r| r.ts < ts).count()
}

/// `decode` with every read checked: what a damaged block would have made it do.
/// Whether a checkpoint's log, which knows `error_codes` codes, is whole: every block
/// decodes and lies before the records, in order, and every record knows its codes.
pub fn check_saved(saved: &format2::Records, error_codes: usize) -> Result<(), String> {
    for r in &saved.hot {
        if r.ts < saved.hot_from {
            return Err(format!(
                "a record at {} lies before {}",
                r.ts, saved.hot_from
            ));
        }
        check_record(r, error_codes)?;
    }
    let mut previous = None;
    for (i, b) in saved.blocks.iter().enumerate() {
        // It holds the records up to the next block's start, the last one's to `hot_from`.
        let end = saved.blocks.get(i + 1).map_or(saved.hot_from, |n| n.start);
        let in_order = previous.is_none_or(|p| p < b.start) && b.start < end;
        if b.start % BLOCK_MS != 0 || !in_order || b.start >= saved.hot_from {
            return Err(format!(
                "the block of records from {} is out of place",
                b.start
            ));
        }
        previous = Some(b.start);
        check_block(b.start..end, b.count, &b.bytes, error_codes)
            .map_err(|e| format!("the block of records from {}: {e}", b.start))?;
    }
    Ok(())
}

/// Whether a checkpoint's record has readings the encoding can count and known codes.
fn check_record(r: &format2::Record, error_codes: usize) -> Result<(), String> {
    if r.obs.len() > u8::MAX as usize {
        return Err(format!("a record at {} has {} readings", r.ts, r.obs.len()));
    }
    for o in &r.obs {
        if let format2::Observation::Error(id) = o {
            check_error_id(*id, error_codes).map_err(|e| format!("a record at {}: {e}", r.ts))?;
        }
    }
    Ok(())
}

fn check_block(
    span: Range<i64>,
    count: u32,
    bytes: &[u8],
    error_codes: usize,
) -> Result<(), String> {
    let at = &mut 0usize;
    let byte = |at: &mut usize| -> Result<u8, String> {
        let b = bytes.get(*at).copied().ok_or("it ends early")?;
        *at += 1;
        Ok(b)
    };
    let varint = |at: &mut usize| -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = byte(at)?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a number runs on past 64 bits".into())
    };
    let mut ts = span.start;
    for _ in 0..count {
        ts = ts
            .checked_add(varint(at)? as i64)
            .ok_or("a time overflows")?;
        if !span.contains(&ts) {
            return Err(format!("a record at {ts} lies outside it"));
        }
        varint(at)?;
        for _ in 0..byte(at)? {
            let tag = byte(at)?;
            match (tag >> 1, tag & 1) {
                (1, _) | (2, 0) => {}
                (2, _) => {
                    let id = varint(at)?;
                    if id >= error_codes as u64 {
                        return Err(format!("unknown error code {id}"));
                    }
                }
                (3..=10, 0) => _ = varint(at)?,
                (3..=10, _) => {
                    *at += 8;
                    if *at > bytes.len() {
                        return Err("it ends early".into());
                    }
                }
                (kind, _) => return Err(format!("unknown kind of reading {kind}")),
            }
        }
    }
    match *at == bytes.len() {
        true => Ok(()),
        false => Err(format!("{} bytes follow its records", bytes.len() - *at)),
    }
}

/// Integral, non-negative values below 2^53 are stored as varints; others as 8 bytes.
fn put_value(out: &mut Writer, kind: u8, v: f64) {
    // Below 2^53 the cast back is exact just when `v` is integral (`fract` is a libm call).
    // The cast to i64 is one instruction where u64's takes a dozen; NaN and values out of
    // range come out as 0 or saturated and fail the comparison or the range.
    let integral = v as i64;
    if (0..9_000_000_000_000_000).contains(&integral)
        && integral as f64 == v
        && v.to_bits() != (-0.0f64).to_bits()
    {
        out.byte(kind << 1);
        out.varint(integral as u64);
    } else {
        out.byte((kind << 1) | 1);
        out.word(v.to_bits().to_le_bytes());
    }
}

/// The most bytes `encode` writes for a record: two varints, the count, then per
/// observation a tag and a varint or eight bytes.
fn max_encoded_len(record: &Rec) -> usize {
    2 * 10 + 1 + record.obs.len() * 11
}

fn encode(start: i64, records: &[Rec]) -> Block {
    thread_local! {
        /// Room for the worst case, kept from block to block (and in cache); the block
        /// gets a copy of just its bytes. It stays as large as the largest block's worst
        /// case (32 bytes a one-reading record: 4 KB for a station's two minutes at one
        /// record a second).
        static ROOM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    ROOM.with_borrow_mut(|room| {
        let worst = records.iter().map(max_encoded_len).sum();
        if room.len() < worst {
            room.resize(worst, 0);
        }
        let len = encode_into(room, (start, 0), records);
        Block {
            start,
            count: records.len() as u32,
            bytes: room[..len].into(),
        }
    })
}

/// Adds `records` (none before the block's last) to the end of `block`: encoded after
/// its last record's time and seq, its bytes as they are.
fn append(block: &mut Block, records: &[Rec]) {
    let after = last_ts_and_seq(block);
    let worst: usize = records.iter().map(max_encoded_len).sum();
    let mut bytes = Vec::with_capacity(block.bytes.len() + worst);
    bytes.extend_from_slice(&block.bytes);
    bytes.resize(block.bytes.len() + worst, 0);
    let len = encode_into(&mut bytes[block.bytes.len()..], after, records);
    bytes.truncate(block.bytes.len() + len);
    block.bytes = bytes.into_boxed_slice();
    block.count += records.len() as u32;
}

/// The time and seq the block's next record is encoded after: its last record's time,
/// and the last seq in it (0 when none), read past every reading.
fn last_ts_and_seq(block: &Block) -> (i64, u64) {
    let bytes = &block.bytes;
    let (mut at, mut ts, mut prev_seq) = (0usize, block.start, 0u64);
    for _ in 0..block.count {
        ts += get_varint(bytes, &mut at) as i64;
        let s = get_varint(bytes, &mut at);
        if s != 0 {
            prev_seq = prev_seq.wrapping_add(unzigzag(s - 1) as u64);
        }
        let n = bytes[at];
        at += 1;
        for _ in 0..n {
            let tag = bytes[at];
            at += 1;
            match (tag >> 1, tag & 1) {
                (1, _) | (2, 0) => {}
                (2, _) | (3..=10, 0) => _ = get_varint(bytes, &mut at),
                _ => at += 8,
            }
        }
    }
    (ts, prev_seq)
}

/// Writes the records' bytes to `room` (which has room for the worst case), each time
/// and seq as a delta from the last (from `after` for the first): how many.
fn encode_into(room: &mut [u8], after: (i64, u64), records: &[Rec]) -> usize {
    let mut out = Writer { room, at: 0 };
    let (mut prev_ts, mut prev_seq) = after;
    for r in records {
        out.varint((r.ts - prev_ts) as u64);
        prev_ts = r.ts;
        match r.seq() {
            None => out.varint(0),
            Some(s) => {
                out.varint(zigzag(s.wrapping_sub(prev_seq) as i64).wrapping_add(1));
                prev_seq = s;
            }
        }
        out.byte(r.obs.len() as u8);
        for o in &r.obs {
            match o {
                Obs::Productive(b) => out.byte((1 << 1) | *b as u8),
                Obs::Error(None) => out.byte(2 << 1),
                Obs::Error(Some(id)) => {
                    out.byte((2 << 1) | 1);
                    out.varint(*id as u64);
                }
                Obs::GoodDelta(v) => put_value(&mut out, 3, *v),
                Obs::GoodTotal(v) => put_value(&mut out, 4, *v),
                Obs::BadDelta(v) => put_value(&mut out, 5, *v),
                Obs::BadTotal(v) => put_value(&mut out, 6, *v),
                Obs::LineSpeed(v) => put_value(&mut out, 7, *v),
                Obs::KwhTotal(v) => put_value(&mut out, 8, *v),
                Obs::KwhDelta(v) => put_value(&mut out, 9, *v),
                Obs::Rssi(v) => put_value(&mut out, 10, *v),
            }
        }
    }
    out.at
}

fn decode(block: &Block, errors: &ErrorCodes) -> Vec<Rec> {
    let bytes = &block.bytes;
    let mut out = Vec::with_capacity(block.count as usize);
    let (mut at, mut ts, mut prev_seq) = (0usize, block.start, 0u64);
    for _ in 0..block.count {
        ts += get_varint(bytes, &mut at) as i64;
        let s = get_varint(bytes, &mut at);
        let seq = (s != 0).then(|| {
            prev_seq = prev_seq.wrapping_add(unzigzag(s - 1) as u64);
            prev_seq
        });
        let n = bytes[at] as usize;
        at += 1;
        let mut obs: SmallVec<[Obs; 2]> = SmallVec::with_capacity(n);
        for _ in 0..n {
            let tag = bytes[at];
            at += 1;
            let (kind, bit) = (tag >> 1, tag & 1);
            let value = |at: &mut usize| -> f64 {
                if bit == 0 {
                    get_varint(bytes, at) as f64
                } else {
                    f64::from_bits(get_word(bytes, at))
                }
            };
            obs.push(match kind {
                1 => Obs::Productive(bit == 1),
                2 if bit == 0 => Obs::Error(None),
                2 => Obs::Error(Some(get_varint(bytes, &mut at) as u32)),
                3 => Obs::GoodDelta(value(&mut at)),
                4 => Obs::GoodTotal(value(&mut at)),
                5 => Obs::BadDelta(value(&mut at)),
                6 => Obs::BadTotal(value(&mut at)),
                7 => Obs::LineSpeed(value(&mut at)),
                8 => Obs::KwhTotal(value(&mut at)),
                9 => Obs::KwhDelta(value(&mut at)),
                10 => Obs::Rssi(value(&mut at)),
                _ => unreachable!("blocks are encoded here, or checked when restored"),
            });
        }
        out.push(Rec::new(ts, seq, obs, errors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use stationflow_schemas::signal::Reading;

    /// A record of one good unit at `ts`, without `seq`.
    fn one_good(ts: i64, errors: &mut ErrorCodes) -> Rec {
        Rec::from_readings(ts, None, &[Reading::GoodDelta(1.0)], errors)
    }

    #[test]
    fn blocks_round_trip_every_kind_of_value() {
        let mut errors = ErrorCodes::default();
        let readings = [
            vec![
                Reading::Productive(true),
                Reading::ErrorCode(Some("E42".into())),
            ],
            vec![Reading::GoodDelta(3.0), Reading::BadTotal(1e17)],
            vec![
                Reading::LineSpeed(-0.0),
                Reading::Rssi(-61.5),
                Reading::ErrorCode(None),
            ],
            vec![
                Reading::KwhTotal(12.25),
                Reading::KwhDelta(0.0),
                Reading::GoodTotal(7.0),
            ],
            vec![Reading::LineSpeed(f64::INFINITY), Reading::Rssi(-3.0)],
            vec![
                Reading::GoodDelta(8_999_999_999_999_999.0),
                Reading::BadDelta(9.0e15),
                Reading::KwhTotal(0.5),
            ],
        ];
        let records: Vec<Rec> = readings
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Rec::from_readings(
                    1_000 + i as i64 * 7,
                    (i != 2).then_some(u64::MAX - 5 + i as u64),
                    r,
                    &mut errors,
                )
            })
            .collect();
        let block = encode(0, &records);
        let decoded = decode(&block, &errors);
        assert_eq!(decoded, records);
        // Bit for bit, so that -0.0 stays negative.
        let bits = |recs: &[Rec]| -> Vec<(u8, u64)> {
            recs.iter()
                .flat_map(|r| r.obs.iter().map(Obs::tag_and_bits))
                .collect()
        };
        assert_eq!(bits(&decoded), bits(&records));
        assert!(block.bytes.len() < records.len() * 24);
        assert_eq!(
            check_block(
                block.start..block.start + BLOCK_MS,
                block.count,
                &block.bytes,
                errors.len()
            ),
            Ok(())
        );
    }

    /// A checkpoint's block may be damaged while its JSON is valid: the check names
    /// what is wrong, where decoding would have read past the end or made a reading up.
    #[test]
    fn a_damaged_block_is_found_not_decoded() {
        let mut errors = ErrorCodes::default();
        let records: Vec<Rec> = (0..5)
            .map(|i| {
                let readings = [Reading::ErrorCode(Some("E1".into())), Reading::Rssi(-50.5)];
                Rec::from_readings(i * 1_000, Some(i as u64), &readings, &mut errors)
            })
            .collect();
        let block = encode(0, &records);
        let damaged = |change: &dyn Fn(&mut Block)| {
            let mut b = block.clone();
            change(&mut b);
            check_block(b.start..b.start + BLOCK_MS, b.count, &b.bytes, errors.len())
                .expect_err("damage found")
        };
        let cut = |b: &mut Block| b.bytes = b.bytes[..b.bytes.len() - 1].into();
        assert_eq!(damaged(&cut), "it ends early");
        assert_eq!(damaged(&|b| b.count += 1), "it ends early");
        let longer = |b: &mut Block| b.bytes = [&b.bytes[..], &[0]].concat().into();
        assert_eq!(damaged(&longer), "1 bytes follow its records");
        // The first reading's tag (after ts, seq and the count): an unknown kind.
        assert_eq!(
            damaged(&|b| b.bytes[3] = 11 << 1),
            "unknown kind of reading 11"
        );
        let none_known = check_block(
            block.start..block.start + BLOCK_MS,
            block.count,
            &block.bytes,
            0,
        )
        .expect_err("codes unknown");
        assert_eq!(none_known, "unknown error code 0");
    }

    #[test]
    fn cooled_and_late_records_stay_in_order() {
        let mut errors = ErrorCodes::default();
        let mut log = EventLog::default();
        for ts in (0..2_000_000).step_by(10_000) {
            let mut r = one_good(ts, &mut errors);
            log.insert(&mut r, &errors);
        }
        log.cool(1_000_000);
        // Only the horizon's block stays hot while the records come in order.
        assert_eq!(log.hot_from(), 960_000);
        let mut late = one_good(5, &mut errors);
        log.insert(&mut late, &errors);
        let (cold, hot) = log.from(0, &errors);
        let all: Vec<i64> = cold.iter().chain(hot).map(|r| r.ts).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        assert_eq!(all.len(), 201);
        assert!(log.contains_same(&one_good(5, &mut errors), &errors));
        assert!(!log.contains_same(&one_good(6, &mut errors), &errors));
        assert_eq!(log.first_ts_at_or_after(6, &errors), Some(10_000));
        let mut removed = 0;
        log.prune_before(600_000, &errors, |_| removed += 1);
        assert_eq!(removed, 61);
    }

    #[test]
    fn repeated_cooling_keeps_every_record_in_order_and_round_trips() {
        let mut errors = ErrorCodes::default();
        let mut log = EventLog::default();
        let mut expected = Vec::new();
        for step in 0..40i64 {
            // A minute of records, one of them out of order, then cool.
            for k in [0, 2, 1, 3] {
                let ts = step * 60_000 + k * 15_000;
                log.insert(&mut one_good(ts, &mut errors), &errors);
                expected.push(ts);
            }
            log.cool(step * 60_000);
            let (cold, hot) = log.from(i64::MIN, &errors);
            let all: Vec<i64> = cold.iter().chain(hot).map(|r| r.ts).collect();
            expected.sort();
            assert_eq!(all, expected);
            assert!(hot.iter().all(|r| r.ts >= log.hot_from()));
            // Hot records are at most the last five minutes (two-minute blocks).
            assert!(log.hot.len() <= 20);

            let copy = through_a_checkpoint(&log, &errors);
            let (copy_cold, copy_hot) = copy.from(i64::MIN, &errors);
            assert_eq!((copy_cold, copy_hot), (cold, hot));
        }
    }

    /// `log` saved, written as JSON, read back, checked and loaded.
    fn through_a_checkpoint(log: &EventLog, errors: &ErrorCodes) -> EventLog {
        let json = serde_json::to_string(&log.save()).unwrap();
        let saved: format2::Records = serde_json::from_str(&json).unwrap();
        check_saved(&saved, errors.len()).expect("whole");
        EventLog::load(saved, errors)
    }

    #[test]
    fn appends_and_duplicates_stay_right_across_a_snapshot() {
        let mut errors = ErrorCodes::default();
        let mut log = EventLog::default();
        for ts in [0, 20_000, 10_000] {
            log.insert(&mut one_good(ts, &mut errors), &errors);
        }
        let mut copy = through_a_checkpoint(&log, &errors);
        // The restored log knows nothing of its last record's time: nothing is assumed.
        assert!(copy.contains_same(&one_good(20_000, &mut errors), &errors));
        for ts in [15_000, 30_000, 25_000, 40_000] {
            copy.insert(&mut one_good(ts, &mut errors), &errors);
        }
        let (_, hot) = copy.from(i64::MIN, &errors);
        let all: Vec<i64> = hot.iter().map(|r| r.ts).collect();
        assert_eq!(all, [0, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000]);
        assert!(copy.contains_same(&one_good(40_000, &mut errors), &errors));
        assert!(copy.contains_same(&one_good(25_000, &mut errors), &errors));
        assert!(!copy.contains_same(&one_good(50_000, &mut errors), &errors));
        assert!(!copy.contains_same(&one_good(12_000, &mut errors), &errors));
    }

    #[test]
    fn a_late_record_keeps_two_more_minutes_hot_for_half_an_hour() {
        let mut errors = ErrorCodes::default();
        let mut log = EventLog::default();
        let minute = |log: &mut EventLog, m: i64, errors: &mut ErrorCodes| {
            for s in 0..60 {
                log.insert(&mut one_good(m * MINUTE_MS + s * 1_000, errors), errors);
            }
            log.cool(m * MINUTE_MS);
        };
        // In order: only the horizon's block is hot...
        for m in 0..20 {
            minute(&mut log, m, &mut errors);
        }
        assert_eq!(log.hot_from(), 18 * MINUTE_MS);
        // ...and a record in the horizon's block is not late. One before it brings the
        // two minutes back, for the blocks cooled from then on...
        log.insert(&mut one_good(18 * MINUTE_MS + 500, &mut errors), &errors);
        log.insert(&mut one_good(16 * MINUTE_MS + 500, &mut errors), &errors);
        for m in 20..24 {
            minute(&mut log, m, &mut errors);
        }
        assert_eq!(log.hot_from(), 20 * MINUTE_MS);
        // ...until the records have come in order for half an hour again.
        for m in 24..50 {
            minute(&mut log, m, &mut errors);
        }
        assert_eq!(log.hot_from(), 48 * MINUTE_MS);
        // The same after a snapshot, and a late record there too.
        let mut copy = through_a_checkpoint(&log, &errors);
        copy.insert(&mut one_good(47 * MINUTE_MS + 500, &mut errors), &errors);
        minute(&mut copy, 50, &mut errors);
        assert_eq!(copy.hot_from(), 48 * MINUTE_MS);
        minute(&mut copy, 52, &mut errors);
        assert_eq!(copy.hot_from(), 50 * MINUTE_MS);
        let (cold, hot) = copy.from(i64::MIN, &errors);
        assert_eq!(cold.len() + hot.len(), 52 * 60 + 3);
        let all: Vec<i64> = cold.iter().chain(hot).map(|r| r.ts).collect();
        assert!(all.is_sorted());
    }

    #[test]
    fn sparse_records_share_blocks_and_are_pruned_by_span_alike() {
        let mut errors = ErrorCodes::default();
        let mut log = EventLog::default();
        // A record every 40 s, with a seq, cooled every minute.
        let mut all = Vec::new();
        for m in 0..60i64 {
            for ts in (m * MINUTE_MS..(m + 1) * MINUTE_MS).step_by(20_000) {
                if ts % 40_000 == 0 {
                    let readings = [Reading::GoodDelta(1.0)];
                    let mut r =
                        Rec::from_readings(ts, Some(ts as u64 / 1_000), &readings, &mut errors);
                    log.insert(&mut r, &errors);
                    all.push(ts);
                }
            }
            log.cool(m * MINUTE_MS);
            // Room only for the records still hot.
            assert_eq!(log.hot.capacity(), log.hot.len());
        }
        // 87 records before the horizon's block: three blocks, not 29.
        assert_eq!(log.cold.len(), 3);
        assert!(log.cold.iter().all(|b| b.count as usize <= MERGED_AT_MOST));
        // A late record goes into the block that holds its time.
        let mut late = one_good(10 * MINUTE_MS + 5, &mut errors);
        log.insert(&mut late, &errors);
        all.push(10 * MINUTE_MS + 5);
        all.sort();
        let copy = through_a_checkpoint(&log, &errors);
        let ts_of = |(cold, hot): (Vec<Rec>, &[Rec])| -> Vec<i64> {
            cold.iter().chain(hot).map(|r| r.ts).collect()
        };
        assert_eq!(ts_of(copy.from(i64::MIN, &errors)), all);
        assert!(copy.contains_same(&one_good(10 * MINUTE_MS + 5, &mut errors), &errors));
        assert_eq!(
            copy.first_ts_at_or_after(10 * MINUTE_MS + 6, &errors),
            Some(640_000)
        );
        // What a prune drops is the records of the two-minute spans wholly before its
        // instant, however the spans were gathered into blocks (up to the hot ones).
        assert_eq!(log.hot_from(), 58 * MINUTE_MS);
        for cut in (0..59).map(|m| m * MINUTE_MS + 7_000) {
            let mut pruned = copy.clone();
            let mut removed = Vec::new();
            pruned.prune_before(cut, &errors, |r| removed.push(r.ts));
            let (gone, kept): (Vec<i64>, Vec<i64>) =
                (all.iter()).partition(|t| block_start(**t) + BLOCK_MS <= cut);
            assert_eq!(removed, gone, "pruned before {cut}");
            let pruned = through_a_checkpoint(&pruned, &errors);
            assert_eq!(
                ts_of(pruned.from(i64::MIN, &errors)),
                kept,
                "kept from {cut}"
            );
        }
    }

    #[test]
    fn the_first_record_at_or_after_is_found_by_scan_and_by_search_alike() {
        let mut errors = ErrorCodes::default();
        // Runs of equal stamps, longer and shorter than the scan back from the tail.
        for len in [0usize, 1, 2, 7, 511, 512, 513, 1500] {
            let records: Vec<Rec> = (0..len as i64)
                .map(|i| one_good(i / 3 * 1_000, &mut errors))
                .collect();
            let last = (len as i64 / 3 + 2) * 1_000;
            for ts in (-1_000..=last).step_by(500) {
                let want = records.partition_point(|r| r.ts < ts);
                assert_eq!(first_at_or_after(&records, ts), want, "{len} records, {ts}");
                assert_eq!(count_before(&records, ts), want, "{len} records, {ts}");
            }
        }
    }
}
