//! Records as the operators keep them: compact, with error codes interned, ordered by
//! `(ts, seq, content)` so that equal timestamps sort the same whatever the arrival order.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use stationflow_schemas::signal::Reading;

/// An interned error code.
pub type ErrorId = u32;

/// One observation of a record, error codes interned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A record in a station's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rec {
    pub ts: i64,
    pub seq: Option<u64>,
    /// Hash of the observations: orders records with equal `ts` and `seq`.
    pub content: u64,
    pub obs: SmallVec<[Obs; 2]>,
}

impl Rec {
    pub fn order_key(&self) -> (i64, u64, u64) {
        (self.ts, self.seq.unwrap_or(u64::MAX), self.content)
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorCodes {
    names: Vec<Box<str>>,
    #[serde(skip)]
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
}

/// Mixes a word into the content hash (FxHash's step: cheap, and stable across runs).
fn mix(hash: &mut u64, word: u64) {
    *hash = (hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
}

impl Rec {
    /// Builds a log record from decoded readings, interning error codes.
    pub fn from_readings(
        ts: i64,
        seq: Option<u64>,
        readings: &[Reading],
        errors: &mut ErrorCodes,
    ) -> Rec {
        let obs: SmallVec<[Obs; 2]> = readings
            .iter()
            .map(|r| match r {
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
            })
            .collect();
        Rec::new(ts, seq, obs, errors)
    }

    /// A record from its observations; `content` hashes them with error codes by name, so
    /// it does not depend on the order codes were first seen in.
    pub fn new(ts: i64, seq: Option<u64>, obs: SmallVec<[Obs; 2]>, errors: &ErrorCodes) -> Rec {
        let mut content = 0xcbf2_9ce4_8422_2325u64;
        for o in &obs {
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
        Rec {
            ts,
            seq,
            content,
            obs,
        }
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
