//! `StationFlow`: the whole operator. Records go in (`apply`), "the time is now T" goes
//! in (`advance`, `finish`), finished windows and downtime events come out (`drain_*`).
//! It keeps per-station event-time watermarks, closes quiet stations by the idle rule,
//! rejects records beyond the allowed lateness, and snapshots and restores all state.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stationflow_schemas::context::Context;
use stationflow_schemas::signal::{Reading, SignalRecord};
use stationflow_schemas::time::{minute_floor, MINUTE_MS, TS_LIMIT_MS};
use stationflow_schemas::window::DowntimeEvent;
use stationflow_schemas::RejectReason;

use crate::checkpoint::{format2, FlowSnapshot, RestoreError};
use crate::maybe_time::MaybeTime;
use crate::plan::{ContextIndex, StationId};
use crate::record::{ErrorCodes, Rec};
use crate::station::{Emitted, Insert, StationOp};
use crate::station_runs::{self, Shared, StationRun};

/// Event-time settings (SPEC §4). All durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// A station's watermark trails its largest `ts` by this much.
    pub out_of_orderness_ms: i64,
    /// Records up to this much older than a station's watermark still revise windows.
    pub allowed_lateness_ms: i64,
    /// A station without records for this long has its windows emitted up to now.
    pub idle_timeout_ms: i64,
    /// Records further than this ahead of the wall clock (`StationFlow::set_wall_clock`)
    /// are `future_ts`, live and in replay: history cannot come from the future.
    pub max_clock_skew_ms: Option<i64>,
    /// Records before this instant cannot be true (a device whose clock battery died
    /// reports 1970 or 2000) and are `bad_ts`; a station whose first version in the
    /// context has a later `valid_from` is bounded by that instead.
    pub earliest_ts_ms: i64,
    /// The furthest one refresh moves a station's horizon: a longer jump (a shutdown in
    /// the history, a device clock that was wrong) is walked in steps of this, as if the
    /// watermarks had advanced that often. A refresh holds every minute it walks, about
    /// 1 KB each, so this bounds its memory. The latest windows and events are those of
    /// one long walk, but for an event longer than the allowed lateness, which counts
    /// only its retained part (docs/semantics.md, "Long jumps of the watermarks").
    pub max_refresh_ms: i64,
}

impl FlowConfig {
    /// The defaults, in one place: replay's flags and `run`'s `default.toml` take them.
    pub const DEFAULT: FlowConfig = FlowConfig {
        out_of_orderness_ms: 5_000,
        allowed_lateness_ms: 24 * 3_600_000,
        idle_timeout_ms: 120_000,
        max_clock_skew_ms: Some(5 * MINUTE_MS),
        earliest_ts_ms: DEFAULT_EARLIEST_TS_MS,
        max_refresh_ms: 24 * 60 * MINUTE_MS,
    };
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig::DEFAULT
    }
}

/// 2010-01-01T00:00:00Z: no data-acquisition history this engine reads is older, and the
/// instants devices fall back to when their clock is lost (1970, 2000) are before it.
pub const DEFAULT_EARLIEST_TS_MS: i64 = 1_262_304_000_000;

/// No record is later than this, whatever the wall clock: the decoders' limit.
pub const LATEST_TS_MS: i64 = TS_LIMIT_MS as i64 - 1;

/// The driver's "now", in milliseconds since 1970: what the idle rule measures a quiet
/// station against, and when a record was admitted. Live, the partition's clock, which
/// follows the wall clock; in a replay, the largest event time admitted so far. Not the
/// wall clock (`set_wall_clock`), which only bounds how far ahead a record may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now(pub i64);

/// Where a record ended: exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In its station's history.
    Applied,
    /// The same as a record already in (station, time, `seq` and readings).
    Duplicate,
    /// Turned away, for the reason given (the driver dead-letters it).
    Rejected(RejectReason),
}

/// Running totals; `records_in` always equals applied + duplicates + rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Records offered: admitted ones and rejected ones, undecodable ones included.
    pub records_in: u64,
    /// Records that went into their station's history.
    pub applied: u64,
    /// Records equal to one already in.
    pub duplicates: u64,
    /// Records turned away, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Signal keys the decoder did not know, over all records (ignored, not rejected).
    pub unknown_keys: u64,
    /// Windows emitted, revisions included.
    pub windows_emitted: u64,
    /// Windows emitted again because late records or a new context changed them.
    pub revisions_emitted: u64,
    /// Downtime events emitted, revisions included.
    pub events_emitted: u64,
    /// Records admitted behind their station's horizon (within the allowed lateness).
    pub late_records: u64,
}

impl Counters {
    /// Records turned away, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn count_rejected(&mut self, reason: RejectReason) {
        self.records_in += 1;
        *self.rejected.entry(reason).or_default() += 1;
    }
}

/// Picks the stations a flow answers for, given a station's code and its plant (as the
/// station's latest version in the context has it). Live, one flow per partition of the
/// signals topic answers for the stations whose key hashes to that partition; a replay
/// answers for all, or a shard's share by station or by plant.
pub type StationFilter = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Every station of a context, from signal records to windows and downtime events.
///
/// A driver feeds it in rounds, always in this order:
/// 1. `set_wall_clock`, then `admit` each record with `Now` (the partition's clock
///    live, the largest event time so far in a replay) into a batch: a record is judged
///    and either rejected with its reason (counted; the driver dead-letters it) or built
///    into the batch, without touching any station;
/// 2. `insert` the batch: each record goes into its station's history, or is counted a
///    duplicate;
/// 3. `advance_into` with `Now`: the windows the watermarks, the idle rule and late
///    records allow are handed to the driver's sinks as they come, in bounded amounts,
///    never kept in the flow.
///
/// At the end of a replay, `finish_into` closes every window up to the last record's
/// minute. `snapshot` (after an insert and advance) and `restore` carry the state across
/// a restart; `update_context` swaps the context. `apply`, `advance` and `finish` are the
/// same steps for one record, or with the rows handed back, for tests and small callers.
pub struct StationFlow {
    ctx: Arc<ContextIndex>,
    filter: Option<StationFilter>,
    /// Per context station: whether this flow answers for it.
    owned: Vec<bool>,
    config: FlowConfig,
    stations: Vec<StationOp>,
    errors: ErrorCodes,
    /// Minute of the earliest record seen: every station has windows from here on.
    origin: Option<i64>,
    max_ts: Option<i64>,
    /// The wall clock as the driver last set it (`set_wall_clock`), for `future_ts`.
    wall_clock: Option<i64>,
    counters: Counters,
    /// Per station (by index) refreshed since the last drain: the downtime open at its
    /// horizon. Keyed by code only when drained: a replay never drains, and would clone
    /// a code per refresh for nothing. Boxed: most stations have none open, and a
    /// million stations' unboxed events took 168 MB.
    underway: Vec<Option<Option<Box<DowntimeEvent>>>>,
    /// Whether refreshes keep `underway`: not for a driver that never drains it.
    keeps_underway: bool,
    /// Per station (by index): what admitting a record reads, kept in step with
    /// `stations` by every change to a station's horizon or history.
    admission: Vec<Admission>,
    /// Per context station: what the admission limits count. Not snapshotted.
    tallies: Vec<Tally>,
    grouping: Grouping,
    /// Per run of stations an advance is split into: where its rows gather.
    run_outs: Vec<Emitted>,
}

/// Error codes are interned for good: kept for the allowed lateness in records and
/// state, and written into every checkpoint. A real station's fault table has tens or
/// hundreds of codes; a device that puts a counter or a time into its code would fill
/// memory. Past this many new codes from one station, its records with yet another new
/// code are `bad_value`; codes already known still go in, and other stations are not
/// affected.
pub const MAX_NEW_ERROR_CODES_PER_STATION: u32 = 1024;

/// The bound on distinct error codes of a flow, whatever the number of stations: with
/// codes of at most 256 bytes, about 25 MB. Past it, records with a new code are
/// `bad_value`.
pub const MAX_ERROR_CODES: usize = 100_000;

/// The most records of one station admitted in a row at one instant (the same `ts`).
/// No device makes a thousand distinct readings in a millisecond: a longer run is a clock
/// that stands still (a dead RTC sending its last time with every record). Each record of
/// such a run is sorted among the others and checked against them for duplicates, so an
/// unbounded run cost time quadratic in its length; past this one, they are `too_large`.
pub const MAX_RECORDS_AT_ONE_INSTANT: u32 = 1024;

/// What a station's admitted records have added up to, for the limits above.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// The instant of the last admitted record, and how many in a row were at it.
    burst_ts: i64,
    burst: u32,
    /// Error codes its records brought in since this flow began.
    codes_brought: u32,
}

/// What `insert` did with a batch: every record was applied or a duplicate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Records that went into their station's history.
    pub applied: u64,
    /// Records equal to one already in.
    pub duplicates: u64,
}

/// A record that `admit` let in, waiting in its batch for `insert`.
#[derive(Debug, Default)]
pub struct Admitted {
    station: StationId,
    now: i64,
    rec: Rec,
}

/// What admission reads of a station, apart from the station (a small array that stays
/// in cache): records before `horizon` are late, and too late before `horizon` minus the
/// allowed lateness or before `earliest`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Admission {
    horizon: i64,
    earliest: i64,
}

impl Admission {
    pub(crate) fn of(station: &StationOp) -> Admission {
        Admission {
            horizon: station.horizon,
            earliest: station.earliest(),
        }
    }
}

/// Scratch space for ordering a batch by station (a counting sort of indices).
#[derive(Debug, Default)]
struct Grouping {
    /// After `group`: where each station's indices end in `order`.
    ends: Vec<u32>,
    order: Vec<u32>,
}

impl Grouping {
    /// Orders the batch's indices station by station, each station's in batch order.
    fn group(&mut self, batch: &[Admitted], stations: usize) {
        let next = &mut self.ends;
        next.clear();
        next.resize(stations + 1, 0);
        for a in batch {
            next[a.station as usize + 1] += 1;
        }
        for s in 1..next.len() {
            next[s] += next[s - 1];
        }
        self.order.clear();
        self.order.resize(batch.len(), 0);
        for (i, a) in batch.iter().enumerate() {
            let at = &mut next[a.station as usize];
            self.order[*at as usize] = i as u32;
            *at += 1;
        }
    }

    /// The indices of `station`'s records.
    fn of(&self, station: usize) -> &[u32] {
        let start = station.checked_sub(1).map_or(0, |s| self.ends[s]);
        &self.order[start as usize..self.ends[station] as usize]
    }
}

impl StationFlow {
    /// A flow over every station of `context`, none of which has a record yet.
    pub fn new(context: Context, config: FlowConfig) -> Self {
        let ctx = Arc::new(ContextIndex::new(context));
        StationFlow {
            owned: vec![true; ctx.station_count()],
            ctx,
            filter: None,
            config,
            stations: Vec::new(),
            errors: ErrorCodes::default(),
            origin: None,
            max_ts: None,
            wall_clock: None,
            counters: Counters::default(),
            underway: Vec::new(),
            keeps_underway: true,
            admission: Vec::new(),
            tallies: Vec::new(),
            grouping: Grouping::default(),
            run_outs: Vec::new(),
        }
    }

    /// Answers only for the stations `filter` picks: their windows and events are emitted
    /// (including stations that never report), records of any other station are
    /// rejected as `wrong_partition`. Also after `restore`: filters are not snapshotted.
    pub fn with_stations(mut self, filter: StationFilter) -> Self {
        self.filter = Some(filter);
        self.mark_owned();
        self
    }

    /// Whether this flow answers for `station`; `None` for a station the context does not
    /// know (whose records it rejects as `unknown_station`).
    pub fn answers_for(&self, station: &str) -> Option<bool> {
        (self.ctx.station_id(station)).map(|id| self.owned[id as usize])
    }

    fn mark_owned(&mut self) {
        self.owned = (0..self.ctx.station_count() as u32)
            .map(|id| {
                let (code, station) = (self.ctx.station_code(id), self.ctx.station_latest(id));
                (self.filter.as_ref()).is_none_or(|owns| owns(code, &station.plant))
            })
            .collect();
    }

    /// The context, as indexed.
    pub fn context(&self) -> &ContextIndex {
        &self.ctx
    }

    /// The event-time settings.
    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    /// What the flow has done since it began (a restored flow's include its past).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a record the driver could not decode (malformed bytes, a missing `ts`):
    /// it came in and was rejected before it reached the flow. The only change a driver
    /// makes to the counters.
    pub fn count_undecodable(&mut self, reason: RejectReason) {
        self.counters.count_rejected(reason);
    }

    /// Tells the flow the wall clock, against which `max_clock_skew_ms` is judged. The
    /// core never reads the clock: the drivers set it, live before each record, in replay
    /// before each batch. Until it is set no record is `future_ts`.
    pub fn set_wall_clock(&mut self, wall_ms: i64) {
        self.wall_clock = Some(wall_ms);
    }

    /// Why the flow rejected a record, in words for the dead letter's detail.
    pub fn rejection_detail(reason: RejectReason) -> &'static str {
        match reason {
            RejectReason::UnknownStation => "the station is not in the context",
            RejectReason::TooLate => {
                "older than the station's watermark minus the allowed lateness"
            }
            RejectReason::FutureTs => "further ahead of the wall clock than max_clock_skew",
            RejectReason::BadTs => {
                "before the earliest plausible time (earliest_ts, or the station's first \
                 valid_from in the context)"
            }
            RejectReason::WrongPartition => "the station belongs to another partition",
            RejectReason::BadValue => {
                "a new error code past the limit: the station brought in more than 1024 \
                 codes, or the flow holds 100000"
            }
            RejectReason::TooLarge => {
                "more than 1024 records of the station in a row at one instant: a clock that \
                 stands still"
            }
            other => other.as_str(),
        }
    }

    /// Debounced completions in the latest windows of every station.
    pub fn debounced(&self) -> u64 {
        self.stations.iter().map(StationOp::debounced).sum()
    }

    /// The largest event time seen.
    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }

    /// `admit` and `insert` for one record.
    pub fn apply(&mut self, record: &SignalRecord, now: Now) -> Outcome {
        let mut batch = Vec::with_capacity(1);
        match self.admit(record, now, &mut batch) {
            Ok(()) => self.insert_from(&mut batch[0]),
            Err(reason) => Outcome::Rejected(reason),
        }
    }

    /// Finds the record's station and decides whether it may go in, without touching the
    /// station's state: if so, appends it to `batch` (built in place, see
    /// `Rec::set_readings`), to go in with `insert` before the next advance; if not, the
    /// reason (counted). `now` drives only the idle rule (`future_ts` is judged against
    /// the wall clock given to `set_wall_clock`).
    pub fn admit(
        &mut self,
        record: &SignalRecord,
        Now(now): Now,
        batch: &mut Vec<Admitted>,
    ) -> Result<(), RejectReason> {
        let station = self.admission_of(record)?;
        let rec = Rec::default();
        batch.push(Admitted { station, now, rec });
        if let Some(last) = batch.last_mut() {
            let readings = &record.readings;
            last.rec
                .set_readings(record.ts, record.seq, readings, &mut self.errors);
        }
        Ok(())
    }

    /// The record's station if it may go in; the reason counted if not.
    fn admission_of(&mut self, record: &SignalRecord) -> Result<StationId, RejectReason> {
        self.counters.records_in += 1;
        self.counters.unknown_keys += record.unknown_keys as u64;
        let station = self.try_admit(record);
        if let Err(reason) = station {
            *self.counters.rejected.entry(reason).or_default() += 1;
        }
        station
    }

    fn try_admit(&mut self, record: &SignalRecord) -> Result<StationId, RejectReason> {
        let Some(id) = self.ctx.station_id(&record.station) else {
            return Err(RejectReason::UnknownStation);
        };
        if !self.owned[id as usize] {
            return Err(RejectReason::WrongPartition);
        }
        let ts = record.ts;
        self.plausible(id, ts)?;
        // Judged against the history as it is: a rejected record must not move any
        // station's origin (a record of 1970 would give every station decades of windows).
        if let Some(origin) = self.origin {
            let bounds = self.admission[id as usize];
            if ts < bounds.horizon {
                let lateness = self.config.allowed_lateness_ms;
                let before_retained = minute_floor(ts) >= origin && ts < bounds.earliest;
                if ts < bounds.horizon.saturating_sub(lateness) || before_retained {
                    return Err(RejectReason::TooLate);
                }
                self.counters.late_records += 1;
            }
        }
        let tally = self.tallies.get(id as usize).copied().unwrap_or_default();
        let in_a_row = if tally.burst_ts == ts { tally.burst } else { 0 };
        if in_a_row >= MAX_RECORDS_AT_ONE_INSTANT {
            return Err(RejectReason::TooLarge);
        }
        let new_codes = self.new_error_codes(record);
        if new_codes > 0
            && (tally.codes_brought + new_codes > MAX_NEW_ERROR_CODES_PER_STATION
                || self.errors.len() + new_codes as usize > MAX_ERROR_CODES)
        {
            return Err(RejectReason::BadValue);
        }
        self.ensure_stations(ts);
        if self.tallies.len() <= id as usize {
            self.tallies
                .resize(self.ctx.station_count(), Tally::default());
        }
        self.tallies[id as usize] = Tally {
            burst_ts: ts,
            burst: in_a_row + 1,
            codes_brought: tally.codes_brought + new_codes,
        };
        Ok(id)
    }

    /// How many error codes of `record` are not interned yet (a record carries a few).
    fn new_error_codes(&mut self, record: &SignalRecord) -> u32 {
        let mut new = 0;
        for (i, reading) in record.readings.iter().enumerate() {
            if let Reading::ErrorCode(Some(code)) = reading {
                let again = record.readings[..i]
                    .iter()
                    .any(|r| matches!(r, Reading::ErrorCode(Some(c)) if c == code));
                if !again && !self.errors.contains(code) {
                    new += 1;
                }
            }
        }
        new
    }

    /// Takes the time of a record of a station this flow does not answer for, as a flow
    /// answering for every station would, so that a replay of a shard of the stations
    /// keeps the time of the whole replay. Its station known and its time plausible, the
    /// record passes for "now" (the answer is `true`) and counts for the last minute
    /// `finish` closes. It sets the origin every station's windows start from when it is
    /// the first record, or moves the origin back when it is earlier and within the
    /// allowed lateness of `now` (so not too late for any station).
    pub fn note_elsewhere(&mut self, record: &SignalRecord, Now(now): Now) -> bool {
        let ts = record.ts;
        let known = self.ctx.station_id(&record.station);
        if known.is_none_or(|id| self.plausible(id, ts).is_err()) {
            return false;
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        let lateness = self.config.allowed_lateness_ms;
        if self.origin.is_none() || ts >= now.max(ts).saturating_sub(lateness) {
            self.ensure_stations(ts);
        }
        true
    }

    /// Whether `ts` can be true for station `id`: not before the floor, not further ahead
    /// of the wall clock than the allowed skew.
    fn plausible(&self, id: StationId, ts: i64) -> Result<(), RejectReason> {
        let floor = self
            .config
            .earliest_ts_ms
            .max(self.ctx.station_valid_from(id));
        if ts < floor {
            return Err(RejectReason::BadTs);
        }
        let latest = match (self.config.max_clock_skew_ms, self.wall_clock) {
            (Some(skew), Some(wall)) => wall.saturating_add(skew).min(LATEST_TS_MS),
            _ => LATEST_TS_MS,
        };
        if ts > latest {
            return Err(RejectReason::FutureTs);
        }
        Ok(())
    }

    /// Puts an admitted record into its station's history, or counts it as a duplicate,
    /// taking the record out of `admitted`.
    fn insert_from(&mut self, admitted: &mut Admitted) -> Outcome {
        let Admitted { station, now, rec } = admitted;
        let (ts, now) = (rec.ts, *now);
        let station = &mut self.stations[*station as usize];
        debug_assert_eq!(Admission::of(station), self.admission[station.id as usize]);
        match station.insert(rec, &self.errors) {
            Insert::Duplicate => {
                self.counters.duplicates += 1;
                Outcome::Duplicate
            }
            Insert::Applied => {
                station.last_seen = MaybeTime::at(now);
                self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
                self.counters.applied += 1;
                Outcome::Applied
            }
        }
    }

    /// Inserts a batch of admitted records station by station, each station's in the
    /// order given, and empties the batch. The state is the same as after inserting them
    /// in order: stations are independent, and what admission read changes only in
    /// `advance`. Each station's state is fetched once per batch instead of once per
    /// record (with a thousand stations interleaved, every record missed the cache).
    ///
    /// The lines a station's records are appended to were last touched minutes ago:
    /// they are asked for while the station `APPEND_AHEAD` before it takes its records,
    /// so that fetching them overlaps that work instead of stalling the appends.
    pub fn insert(&mut self, batch: &mut Vec<Admitted>) -> Inserted {
        const APPEND_AHEAD: usize = 2;
        let (applied, duplicates) = (self.counters.applied, self.counters.duplicates);
        let mut grouping = std::mem::take(&mut self.grouping);
        grouping.group(batch, self.stations.len());
        for s in 0..self.stations.len() {
            if let Some(ahead) = self.stations.get(s + APPEND_AHEAD) {
                ahead.prefetch_appends(grouping.of(s + APPEND_AHEAD).len());
            }
            for &i in grouping.of(s) {
                self.insert_from(&mut batch[i as usize]);
            }
        }
        self.grouping = grouping;
        batch.clear();
        Inserted {
            applied: self.counters.applied - applied,
            duplicates: self.counters.duplicates - duplicates,
        }
    }

    /// Refreshes what admission reads of every station.
    fn sync_admission(&mut self) {
        self.admission = self.stations.iter().map(Admission::of).collect();
    }

    /// Creates the stations on the first record; moves every station's origin back when
    /// a record precedes everything seen so far.
    fn ensure_stations(&mut self, ts: i64) {
        let minute = minute_floor(ts);
        match self.origin {
            None => {
                self.origin = Some(minute);
                self.stations = (0..self.ctx.station_count() as u32)
                    .map(|id| StationOp::new(id, minute))
                    .collect();
                self.sync_admission();
            }
            Some(o) if minute < o => {
                self.origin = Some(minute);
                for s in &mut self.stations {
                    s.extend_origin(minute);
                }
                self.sync_admission();
            }
            _ => {}
        }
    }

    /// `advance_into`, with every row handed back at once.
    #[must_use = "the rows are handed back, not kept"]
    pub fn advance(&mut self, now: Now) -> Emitted {
        let mut out = Emitted::default();
        let Ok(()) = self.advance_into(now, usize::MAX, std::slice::from_mut(&mut out), gather);
        out
    }

    /// Emits what the watermarks allow: each station up to its own watermark, quiet
    /// stations (no record for `idle_timeout`) up to `now`, and revisions of windows
    /// changed by late records, handing the rows to `sinks` as they come. The stations
    /// are split into as many runs of neighbours as there are sinks, each refreshed on a
    /// thread of its own (the first on this one): `drain` gets a run's sink and its rows
    /// whenever `rows` or more windows wait, and once at the end, so no row stays in the
    /// flow. Each station's rows reach its run's sink in order. When the watermarks jump
    /// over days (a replay across a plant's shutdown, every station quiet), each station
    /// emits days of windows: held until the end of the advance, a thousand stations'
    /// rows took gigabytes.
    pub fn advance_into<S: Send, E: Send>(
        &mut self,
        Now(now): Now,
        rows: usize,
        sinks: &mut [S],
        drain: impl Fn(&mut S, &mut Emitted) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        let Some(origin) = self.origin else {
            return Ok(());
        };
        let config = &self.config;
        let horizons: Vec<i64> = (self.stations.iter())
            .map(|s| {
                let watermark = s.max_ts.get().map(|t| t - config.out_of_orderness_ms);
                let quiet_since = s.last_seen.get().unwrap_or(origin);
                let horizon = watermark.map_or(origin, minute_floor);
                if now - quiet_since >= config.idle_timeout_ms {
                    return horizon.max(minute_floor(now));
                }
                horizon
            })
            .collect();
        self.refresh_runs(&horizons, now, rows, sinks, &drain)
    }

    /// `finish_into`, with every row handed back at once.
    #[must_use = "the rows are handed back, not kept"]
    pub fn finish(&mut self, now: Now) -> Emitted {
        let mut out = Emitted::default();
        let Ok(()) = self.finish_into(now, usize::MAX, std::slice::from_mut(&mut out), gather);
        out
    }

    /// End of a replay: every station's windows up to and including the minute of the
    /// last record, handed to `sinks` as `advance_into` does.
    pub fn finish_into<S: Send, E: Send>(
        &mut self,
        Now(now): Now,
        rows: usize,
        sinks: &mut [S],
        drain: impl Fn(&mut S, &mut Emitted) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        let Some(max_ts) = self.max_ts else {
            return Ok(());
        };
        let horizons = vec![minute_floor(max_ts) + MINUTE_MS; self.stations.len()];
        self.refresh_runs(&horizons, now, rows, sinks, &drain)
    }

    /// Refreshes every station to its horizon, in runs of neighbours, one per sink.
    fn refresh_runs<S: Send, E: Send>(
        &mut self,
        horizons: &[i64],
        now: i64,
        rows: usize,
        sinks: &mut [S],
        drain: &(impl Fn(&mut S, &mut Emitted) -> Result<(), E> + Sync),
    ) -> Result<(), E> {
        let count = self.stations.len();
        debug_assert_eq!(self.owned.len(), count);
        debug_assert_eq!(self.admission.len(), count);
        if self.keeps_underway {
            self.underway.resize(count, None);
        } else {
            // A context reload rebuilt it by station: forgone, it stays empty.
            self.underway.clear();
        }
        let per_run = count.div_ceil(sinks.len().max(1)).max(1);
        self.run_outs.resize_with(sinks.len(), Emitted::default);
        let shared = Shared {
            ctx: &self.ctx,
            errors: &self.errors,
            allowed_lateness_ms: self.config.allowed_lateness_ms,
            max_refresh_ms: self.config.max_refresh_ms,
            now,
            rows,
        };
        let runs = (self.stations.chunks_mut(per_run))
            .zip(self.admission.chunks_mut(per_run))
            // Forgone, `underway` stays empty: each run gets an empty slice.
            .zip((self.underway.chunks_mut(per_run)).chain(std::iter::repeat_with(|| &mut [][..])))
            .zip(self.owned.chunks(per_run))
            .zip(horizons.chunks(per_run))
            .map(
                |((((stations, admission), underway), owned), horizons)| StationRun {
                    stations,
                    admission,
                    underway,
                    owned,
                    horizons,
                },
            )
            .collect();
        let emits = station_runs::refresh_all(runs, &shared, &mut self.run_outs, sinks, drain)?;
        emits.add_to(&mut self.counters);
        Ok(())
    }

    /// Replaces the context. Windows from `changed_from` on (inside the allowed
    /// lateness) are recomputed at the next `advance` and emitted again where changed.
    pub fn update_context(&mut self, context: Context, changed_from: i64) {
        // Underway spans not drained yet are matched by code, like the stations.
        let underway = self.drain_underway();
        let codes = self.station_codes();
        self.ctx = Arc::new(ContextIndex::new(context));
        self.mark_owned();
        self.match_stations(codes, underway, changed_from);
    }

    /// The code of each station held, by id, as the context names it.
    fn station_codes(&self) -> Vec<String> {
        (self.stations.iter())
            .map(|s| self.ctx.station_code(s.id).to_string())
            .collect()
    }

    /// Gives each station of the context its state, found by code among the stations
    /// held, whose codes are `codes` (a new station starts fresh), and marks its windows
    /// from `changed_from` for recomputation.
    fn match_stations(
        &mut self,
        codes: Vec<String>,
        mut underway: BTreeMap<String, Option<DowntimeEvent>>,
        changed_from: i64,
    ) {
        let old: Vec<StationOp> = std::mem::take(&mut self.stations);
        let origin = self.origin;
        // Stations are matched by code: the new context may add or reorder them.
        let mut by_code: BTreeMap<String, StationOp> = codes.into_iter().zip(old).collect();
        if let Some(origin) = origin {
            (self.stations, self.underway) = (0..self.ctx.station_count() as u32)
                .map(|id| {
                    let code = &**self.ctx.station_code(id);
                    let mut s = by_code
                        .remove(code)
                        .unwrap_or_else(|| StationOp::new(id, origin));
                    s.id = id;
                    s.context_changed();
                    s.mark_dirty(changed_from.max(s.earliest()));
                    (s, underway.remove(code).map(|open| open.map(Box::new)))
                })
                .unzip();
        }
        self.sync_admission();
    }

    /// For a driver that never drains the downtime underway (a replay: no alert rules
    /// read it, the context never changes): refreshes keep none of it, where a million
    /// stations' open downtime took 80 MB. `drain_underway` then answers with none.
    pub fn forgo_underway(&mut self) {
        self.keeps_underway = false;
        self.underway.clear();
    }

    /// For each station whose windows moved since the last call: the downtime span
    /// open at its newest window's end (`end` = that instant), or none.
    pub fn drain_underway(&mut self) -> BTreeMap<String, Option<DowntimeEvent>> {
        let underway = std::mem::take(&mut self.underway);
        self.stations
            .iter()
            .zip(underway)
            .filter_map(|(s, open)| {
                let code = self.ctx.station_code(s.id).to_string();
                Some((code, open?.map(|e| *e)))
            })
            .collect()
    }

    /// The state to restore from (`restore`), the context aside. Admitted records not yet
    /// inserted are not in it: insert them first.
    pub fn snapshot(&self) -> FlowSnapshot {
        FlowSnapshot {
            config: self.config.save(),
            stations: (self.stations.iter())
                .map(|s| s.save(self.ctx.station_code(s.id)))
                .collect(),
            error_codes: self.errors.save(),
            origin: self.origin,
            max_ts: self.max_ts,
            counters: self.counters.save(),
        }
    }

    /// Continues from a snapshot with the given context (reloaded by the driver); a
    /// snapshot that is not whole (`FlowSnapshot::check`) is refused.
    pub fn restore(context: Context, snapshot: FlowSnapshot) -> Result<Self, RestoreError> {
        snapshot.check()?;
        let mut flow = StationFlow::new(context, snapshot.config());
        flow.counters = snapshot.counters();
        let errors = ErrorCodes::load(snapshot.error_codes);
        let codes: Vec<String> = (snapshot.stations.iter()).map(|s| s.code.clone()).collect();
        flow.stations = (snapshot.stations.into_iter().enumerate())
            .map(|(id, s)| StationOp::load(s, id as StationId, &errors))
            .collect();
        flow.errors = errors;
        flow.origin = snapshot.origin;
        flow.max_ts = snapshot.max_ts;
        flow.sync_admission();
        let same_stations = codes.len() == flow.ctx.station_count()
            && (codes.iter())
                .enumerate()
                .all(|(i, code)| **flow.ctx.station_code(i as u32) == **code);
        if !same_stations {
            flow.match_stations(codes, BTreeMap::new(), i64::MIN);
        }
        Ok(flow)
    }
}

impl FlowConfig {
    fn save(&self) -> format2::Config {
        format2::Config {
            out_of_orderness_ms: self.out_of_orderness_ms,
            allowed_lateness_ms: self.allowed_lateness_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_clock_skew_ms: self.max_clock_skew_ms,
            earliest_ts_ms: self.earliest_ts_ms,
            max_refresh_ms: self.max_refresh_ms,
        }
    }
}

impl Counters {
    fn save(&self) -> format2::Counters {
        format2::Counters {
            records_in: self.records_in,
            applied: self.applied,
            duplicates: self.duplicates,
            rejected: self.rejected.clone(),
            unknown_keys: self.unknown_keys,
            windows_emitted: self.windows_emitted,
            revisions_emitted: self.revisions_emitted,
            events_emitted: self.events_emitted,
            late_records: self.late_records,
        }
    }
}

/// A drain that moves a run's rows into `into`.
fn gather(into: &mut Emitted, rows: &mut Emitted) -> Result<(), Infallible> {
    move_all(&mut into.windows, &mut rows.windows);
    move_all(&mut into.events, &mut rows.events);
    Ok(())
}

/// Appends `rows` to `into`; when `into` is empty, they change places instead.
fn move_all<T>(into: &mut Vec<T>, rows: &mut Vec<T>) {
    if into.is_empty() {
        std::mem::swap(into, rows);
    } else {
        into.append(rows);
    }
}
