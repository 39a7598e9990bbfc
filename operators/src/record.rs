//! Records as the operators keep them: compact, with error codes interned, ordered by
//! `(ts, seq, content)` so that equal timestamps sort the same whatever the arrival order.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use stationflow_schemas::signal::Reading;

use crate::checkpoint::format2::{Observation, Record};

/// An interned error code.
pub type ErrorId = u32;

/// One observation of a record, error codes interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Obs {
    Productive(bool),
    Error(Option<ErrorId>),
    GoodDelta(f64),
    GoodTotal(f64),
    BadDelta(f64),
    BadTotal(f64),
    LineSpeed(f64),
    KwhTotal(f64),
    KwhDelta(f64),
    Rssi(f64),
}

/// A record in a station's event log: 64 bytes, one cache line. Whether it has a `seq`
/// is kept in the content hash's lowest bit rather than in an `Option` (which would
/// make it 72).
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub ts: i64,
    /// The record's `seq`; `u64::MAX` without one, so that such records sort last.
    seq: u64,
    /// Hash of the observations, which orders records with equal `ts` and `seq`, with
    /// its lowest bit replaced by `HAS_SEQ`.
    content: u64,
    pub obs: SmallVec<[Obs; 2]>,
}

const HAS_SEQ: u64 = 1;

/// A record at 0 without `seq` or observations: what a record moved out leaves behind.
impl Default for Rec {
    fn default() -> Rec {
        Rec::with_content(0, None, 0, SmallVec::new())
    }
}

impl Rec {
    fn with_content(ts: i64, seq: Option<u64>, content: u64, obs: SmallVec<[Obs; 2]>) -> Rec {
        let mut rec = Rec {
            ts,
            seq: 0,
            content: 0,
            obs,
        };
        rec.set_key(ts, seq, content);
        rec
    }

    fn set_key(&mut self, ts: i64, seq: Option<u64>, content: u64) {
        self.ts = ts;
        self.seq = seq.unwrap_or(u64::MAX);
        self.content = (content & !HAS_SEQ) | if seq.is_some() { HAS_SEQ } else { 0 };
    }

    pub fn seq(&self) -> Option<u64> {
        (self.content & HAS_SEQ != 0).then_some(self.seq)
    }

    /// `(ts, seq, content)`, records without `seq` after those with one at the same `ts`.
    pub fn order_key(&self) -> (i64, u64, u64) {
        (self.ts, self.seq, self.content)
    }

    /// Any count signal (deltas or running totals): a continuous line's speed-based
    /// output applies only to windows without one.
    pub fn has_count(&self) -> bool {
        self.obs.iter().any(|o| {
            matches!(
                o,
                Obs::GoodDelta(_) | Obs::GoodTotal(_) | Obs::BadDelta(_) | Obs::BadTotal(_)
            )
        })
    }
}

/// Error codes, interned: records and state hold small ids.
#[derive(Debug, Clone, Default)]
pub struct ErrorCodes {
    names: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, ErrorId>,
}

impl ErrorCodes {
    pub fn intern(&mut self, code: &str) -> ErrorId {
        if self.ids.len() != self.names.len() {
            self.rebuild();
        }
        if let Some(id) = self.ids.get(code) {
            return *id;
        }
        let id = self.names.len() as ErrorId;
        self.names.push(code.into());
        self.ids.insert(code.into(), id);
        id
    }

    /// Whether `code` is interned already.
    pub fn contains(&mut self, code: &str) -> bool {
        if self.ids.len() != self.names.len() {
            self.rebuild();
        }
        self.ids.contains_key(code)
    }

    /// How many codes are interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    fn rebuild(&mut self) {
        self.ids = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as ErrorId))
            .collect();
    }

    pub fn name(&self, id: ErrorId) -> &str {
        &self.names[id as usize]
    }

    /// The codes as a checkpoint keeps them: by id.
    pub fn save(&self) -> Vec<String> {
        self.names.iter().map(|n| n.to_string()).collect()
    }

    /// Whether a checkpoint's codes are each there once.
    pub fn check_saved(names: &[String]) -> Result<(), String> {
        let mut seen = rustc_hash::FxHashSet::default();
        match names.iter().find(|name| !seen.insert(name.as_str())) {
            Some(name) => Err(format!("error code `{name}` is listed twice")),
            None => Ok(()),
        }
    }

    /// The codes of a checkpoint (`check_saved` passed).
    pub fn load(names: Vec<String>) -> ErrorCodes {
        let names: Vec<Box<str>> = names.into_iter().map(String::into_boxed_str).collect();
        let mut errors = ErrorCodes {
            names,
            ids: FxHashMap::default(),
        };
        errors.rebuild();
        errors
    }
}

/// Mixes a word into the content hash (FxHash's step: cheap, and stable across runs).
fn mix(hash: &mut u64, word: u64) {
    *hash = (hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
}

impl Rec {
    /// Builds a log record from decoded readings, interning error codes.
    #[cfg(test)]
    pub fn from_readings(
        ts: i64,
        seq: Option<u64>,
        readings: &[Reading],
        errors: &mut ErrorCodes,
    ) -> Rec {
        let mut rec = Rec::default();
        rec.set_readings(ts, seq, readings, errors);
        rec
    }

    /// Makes this the record of decoded readings, where it lies. A record built apart
    /// and then moved here went through the stack, written in parts and read back in
    /// words, and such a read waits for every store before it.
    pub fn set_readings(
        &mut self,
        ts: i64,
        seq: Option<u64>,
        readings: &[Reading],
        errors: &mut ErrorCodes,
    ) {
        self.obs.clear();
        for r in readings {
            let o = match r {
                Reading::Productive(b) => Obs::Productive(*b),
                Reading::ErrorCode(None) => Obs::Error(None),
                Reading::ErrorCode(Some(code)) => Obs::Error(Some(errors.intern(code))),
                Reading::GoodDelta(v) => Obs::GoodDelta(*v),
                Reading::GoodTotal(v) => Obs::GoodTotal(*v),
                Reading::BadDelta(v) => Obs::BadDelta(*v),
                Reading::BadTotal(v) => Obs::BadTotal(*v),
                Reading::LineSpeed(v) => Obs::LineSpeed(*v),
                Reading::KwhTotal(v) => Obs::KwhTotal(*v),
                Reading::KwhDelta(v) => Obs::KwhDelta(*v),
                Reading::Rssi(v) => Obs::Rssi(*v),
            };
            self.obs.push(o);
        }
        let content = content_hash(&self.obs, errors);
        self.set_key(ts, seq, content);
    }

    /// A record from its observations; `content` hashes them with error codes by name, so
    /// it does not depend on the order codes were first seen in.
    pub fn new(ts: i64, seq: Option<u64>, obs: SmallVec<[Obs; 2]>, errors: &ErrorCodes) -> Rec {
        let content = content_hash(&obs, errors);
        Rec::with_content(ts, seq, content, obs)
    }
}

/// The hash of a record's observations, error codes by name.
fn content_hash(obs: &[Obs], errors: &ErrorCodes) -> u64 {
    let mut content = 0xcbf2_9ce4_8422_2325u64;
    for o in obs {
        let (tag, value) = o.tag_and_bits();
        if let Obs::Error(Some(id)) = o {
            for chunk in errors.name(*id).as_bytes().chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                mix(&mut content, u64::from_le_bytes(word));
            }
        }
        mix(&mut content, tag as u64);
        mix(&mut content, value);
    }
    content
}

impl Rec {
    /// The record as a checkpoint keeps it.
    pub fn save(&self) -> Record {
        Record {
            ts: self.ts,
            seq: self.seq(),
            obs: self.obs.iter().map(|o| o.save()).collect(),
        }
    }

    /// The record of a checkpoint (checked), whose error codes are `errors`.
    pub fn load(r: Record, errors: &ErrorCodes) -> Rec {
        let obs = r.obs.into_iter().map(Obs::load).collect();
        Rec::new(r.ts, r.seq, obs, errors)
    }
}

impl Obs {
    fn save(self) -> Observation {
        match self {
            Obs::Productive(b) => Observation::Productive(b),
            Obs::Error(id) => Observation::Error(id),
            Obs::GoodDelta(v) => Observation::GoodDelta(v),
            Obs::GoodTotal(v) => Observation::GoodTotal(v),
            Obs::BadDelta(v) => Observation::BadDelta(v),
            Obs::BadTotal(v) => Observation::BadTotal(v),
            Obs::LineSpeed(v) => Observation::LineSpeed(v),
            Obs::KwhTotal(v) => Observation::KwhTotal(v),
            Obs::KwhDelta(v) => Observation::KwhDelta(v),
            Obs::Rssi(v) => Observation::Rssi(v),
        }
    }

    fn load(o: Observation) -> Obs {
        match o {
            Observation::Productive(b) => Obs::Productive(b),
            Observation::Error(id) => Obs::Error(id),
            Observation::GoodDelta(v) => Obs::GoodDelta(v),
            Observation::GoodTotal(v) => Obs::GoodTotal(v),
            Observation::BadDelta(v) => Obs::BadDelta(v),
            Observation::BadTotal(v) => Obs::BadTotal(v),
            Observation::LineSpeed(v) => Obs::LineSpeed(v),
            Observation::KwhTotal(v) => Obs::KwhTotal(v),
            Observation::KwhDelta(v) => Obs::KwhDelta(v),
            Observation::Rssi(v) => Obs::Rssi(v),
        }
    }
}

/// `id` if a checkpoint that knows `error_codes` codes knows it.
pub fn check_error_id(id: Option<ErrorId>, error_codes: usize) -> Result<(), String> {
    match id {
        Some(id) if id as usize >= error_codes => {
            Err(format!("unknown error code {id} of {error_codes}"))
        }
        _ => Ok(()),
    }
}

impl Obs {
    /// A small tag per kind, and the value's bits (error ids excluded: they are hashed
    /// by name).
    pub fn tag_and_bits(&self) -> (u8, u64) {
        match self {
            Obs::Productive(b) => (1, *b as u64),
            Obs::Error(None) => (2, u64::MAX),
            Obs::Error(Some(_)) => (2, 0),
            Obs::GoodDelta(v) => (3, v.to_bits()),
            Obs::GoodTotal(v) => (4, v.to_bits()),
            Obs::BadDelta(v) => (5, v.to_bits()),
            Obs::BadTotal(v) => (6, v.to_bits()),
            Obs::LineSpeed(v) => (7, v.to_bits()),
            Obs::KwhTotal(v) => (8, v.to_bits()),
            Obs::KwhDelta(v) => (9, v.to_bits()),
            Obs::Rssi(v) => (10, v.to_bits()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: Option<u64>) -> Rec {
        let obs = [Obs::GoodDelta(1.0), Obs::Rssi(-50.0)]
            .into_iter()
            .collect();
        Rec::new(1_000, seq, obs, &ErrorCodes::default())
    }

    #[test]
    fn a_record_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<Rec>(), 64);
    }

    #[test]
    fn seq_is_kept_exactly_including_the_largest_and_none() {
        for seq in [None, Some(0), Some(7), Some(u64::MAX - 1), Some(u64::MAX)] {
            assert_eq!(rec(seq).seq(), seq);
        }
        // Without seq a record sorts after every seq at its ts, as with `u64::MAX`.
        assert!(rec(Some(u64::MAX - 1)).order_key() < rec(None).order_key());
        assert_eq!(rec(None).order_key().1, rec(Some(u64::MAX)).order_key().1);
        assert_ne!(rec(None), rec(Some(u64::MAX)));
    }

    #[test]
    fn a_record_set_in_place_equals_one_built_fresh() {
        let mut errors = ErrorCodes::default();
        let readings = [
            vec![
                Reading::ErrorCode(Some("E-7".into())),
                Reading::Productive(false),
                Reading::KwhTotal(3.5),
            ],
            vec![Reading::GoodDelta(2.0)],
            vec![Reading::BadDelta(1.0), Reading::ErrorCode(None)],
            vec![],
        ];
        let mut reused = Rec::default();
        for (k, r) in readings.iter().enumerate() {
            let (ts, seq) = (1_000 * k as i64, (k % 2 == 0).then_some(k as u64));
            reused.set_readings(ts, seq, r, &mut errors);
            assert_eq!(reused, Rec::from_readings(ts, seq, r, &mut errors));
            assert_eq!(reused.obs.len(), r.len());
            assert_eq!(reused.seq(), seq);
        }
    }

    #[test]
    fn checkpoints_keep_the_layout_with_an_optional_seq() {
        let errors = ErrorCodes::default();
        for seq in [None, Some(3), Some(u64::MAX)] {
            let r = rec(seq);
            let saved = r.save();
            assert_eq!(saved.seq, seq);
            assert_eq!(Rec::load(saved, &errors), r);
        }
    }
}
