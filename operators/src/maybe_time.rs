//! An optional instant in the room of one: `Option<i64>` takes 16 bytes, and a station's
//! state holds several, a million stations millions.

/// An instant or none, in 8 bytes: `i64::MIN` is none (no event time, clock reading or
/// horizon lies that far back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeTime(i64);

impl MaybeTime {
    pub const NONE: MaybeTime = MaybeTime(i64::MIN);

    /// The instant `t` (`i64::MIN` reads back as none).
    pub fn at(t: i64) -> MaybeTime {
        MaybeTime(t)
    }

    pub fn new(t: Option<i64>) -> MaybeTime {
        t.map_or(MaybeTime::NONE, MaybeTime)
    }

    pub fn get(self) -> Option<i64> {
        (self != MaybeTime::NONE).then_some(self.0)
    }

    pub fn is_some(self) -> bool {
        self != MaybeTime::NONE
    }

    /// The later of this instant and `t`.
    pub fn max_with(self, t: i64) -> MaybeTime {
        MaybeTime(self.get().map_or(t, |m| m.max(t)))
    }

    /// The earlier of this instant and `t`.
    pub fn min_with(self, t: i64) -> MaybeTime {
        MaybeTime(self.get().map_or(t, |m| m.min(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_or_none_round_trips() {
        for t in [None, Some(0), Some(-1), Some(i64::MAX), Some(i64::MIN + 1)] {
            assert_eq!(MaybeTime::new(t).get(), t);
        }
        assert_eq!(MaybeTime::NONE.max_with(5).get(), Some(5));
        assert_eq!(MaybeTime::new(Some(7)).max_with(5).get(), Some(7));
        assert_eq!(MaybeTime::new(Some(7)).min_with(5).get(), Some(5));
        assert_eq!(std::mem::size_of::<MaybeTime>(), 8);
    }
}
