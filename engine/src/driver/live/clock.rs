//! A partition's clock: what "now" is for the idle rule. Live data arrives about as it
//! happens, and then this is the wall clock. History published into Kafka arrives much
//! faster than it happened; then the clock follows the data (the largest `ts` read) and
//! between records moves on at the wall clock's pace, never past the wall clock. So a
//! quiet station of a replayed week is closed a couple of minutes of *its* time after
//! its last record, not at today's date.

#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionClock {
    /// (clock, wall clock) when last read or moved.
    last: Option<(i64, i64)>,
}

impl PartitionClock {
    /// A clock that resumes at `ts` (a restored partition's largest event time).
    pub fn starting_at(ts: Option<i64>, wall: i64) -> Self {
        PartitionClock {
            last: ts.map(|t| (t.min(wall), wall)),
        }
    }

    /// A record with event time `ts` was read at `wall`.
    pub fn saw(&mut self, ts: i64, wall: i64) {
        let now = self.now(wall).map_or(ts, |n| n.max(ts)).min(wall);
        self.last = Some((now, wall));
    }

    /// "Now" at wall time `wall`; `None` before the first record.
    pub fn now(&self, wall: i64) -> Option<i64> {
        let (clock, at) = self.last?;
        Some((clock + (wall - at).max(0)).min(wall).max(clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: i64 = 1_800_000_000_000;

    #[test]
    fn live_data_runs_on_the_wall_clock() {
        let mut c = PartitionClock::default();
        assert_eq!(c.now(WALL), None);
        c.saw(WALL - 300, WALL);
        assert_eq!(c.now(WALL), Some(WALL - 300));
        assert_eq!(c.now(WALL + 10_000), Some(WALL + 9_700));
        // A record a little ahead of the wall clock does not move the clock past it.
        c.saw(WALL + 20_000, WALL + 10_000);
        assert_eq!(c.now(WALL + 10_000), Some(WALL + 10_000));
    }

    #[test]
    fn history_follows_the_data_then_the_wall_clock_pace() {
        let day = 86_400_000;
        let mut c = PartitionClock::default();
        c.saw(WALL - 30 * day, WALL);
        c.saw(WALL - 29 * day, WALL + 5);
        // An older record never moves the clock back.
        c.saw(WALL - 31 * day, WALL + 6);
        assert_eq!(c.now(WALL + 6), Some(WALL - 29 * day + 1));
        // Two quiet minutes of wall clock are two minutes of the data's time.
        assert_eq!(c.now(WALL + 120_006), Some(WALL - 29 * day + 120_001));
    }

    #[test]
    fn restored_clock_starts_at_the_largest_event_time() {
        let c = PartitionClock::starting_at(Some(WALL - 1_000), WALL);
        assert_eq!(c.now(WALL + 500), Some(WALL - 500));
        assert_eq!(PartitionClock::starting_at(None, WALL).now(WALL), None);
    }
}
