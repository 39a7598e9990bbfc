//! One station's operator: its event log inside the allowed lateness, state snapshots at
//! minute boundaries, and what it has emitted. `refresh` recomputes the windows from the
//! earliest changed minute to the new horizon and emits those whose content changed,
//! each with `revision` + 1 — so any arrival order ends in the same latest windows.
//!
//! A stop becomes downtime only once it is long enough, so a pass that sees a stop (or
//! cycle gap) begun before its start resolve differently than the windows before assumed
//! rewinds to a snapshot before that stop. Snapshots record what was assumed.

use crate::plan::StationSettings;
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::ops::RangeBounds;

use stationflow_schemas::time::{minute_floor, MINUTE_MS};
use stationflow_schemas::window::{DowntimeEvent, StationWindow};

use crate::checkpoint::format2;
use crate::event_log::{self, EventLog};
use crate::fingerprint;
use crate::maybe_time::MaybeTime;
use crate::metrics::{self, DowntimePiece};
use crate::packed_state::PackedState;
use crate::plan::{ContextIndex, ShiftCache, StationId};
use crate::record::{ErrorCodes, Rec};
use crate::seq_set::SeqSet;
use crate::snapshots::Snapshots;
use crate::timeline::{ClosedSpan, MinuteFacts, StationState, Walker};

/// Snapshots are kept at every minute this close to the horizon while the station's
/// records come late, and every `SPARSE_SNAPSHOT_MS` further back. A late record walks
/// from the snapshot at or before its minute.
const DENSE_SNAPSHOT_MS: i64 = 30 * MINUTE_MS;
const SPARSE_SNAPSHOT_MS: i64 = 15 * MINUTE_MS;
/// The dense span of a station whose records come in order: none, as its refreshes
/// start at the horizon. A record that does come late walks from a sparse snapshot once,
/// and makes the station one that sends late records. At a million stations, thirty
/// dense snapshots each would take gigabytes, and one more minute's 100 MB.
const IN_ORDER_DENSE_SNAPSHOT_MS: i64 = 0;
/// The sparse snapshots' spacing for such a station: over a day's allowed lateness, 24
/// rather than 96 of them. A record that does come late walks at most an hour.
const IN_ORDER_SPARSE_SNAPSHOT_MS: i64 = 60 * MINUTE_MS;
/// A station counts as sending late records for this long after one came.
const LATE_FOR_MS: i64 = 30 * MINUTE_MS;
/// History kept before the allowed lateness, so that stops begun just before it can
/// still be re-evaluated.
const RETENTION_MARGIN_MS: i64 = 60 * MINUTE_MS;

/// The state at a minute, and whether the windows before it treat its pending span as
/// downtime.
type Snapshot = PackedState;

/// What was emitted for a minute, in 16 bytes with `Option`'s niche: a station keeps
/// one a minute of its allowed lateness, 1,440 a day, and a flag of its own made it 24.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EmittedWindow {
    fingerprint: u64,
    revision: i32,
    /// The debounced completions in it, plus one, with `WEAK` set while `fingerprint`
    /// is an FxHash one from a checkpoint made before SipHash (see `fingerprint`).
    packed: NonZeroU32,
}

/// `EmittedWindow::packed`'s flag. A minute holds at most `MAX_DEBOUNCED` debounced
/// completions: admission takes `MAX_RECORDS_AT_ONE_INSTANT` records an instant.
const WEAK: u32 = 1 << 31;
const MAX_DEBOUNCED: u64 = 60_000 * crate::MAX_RECORDS_AT_ONE_INSTANT as u64;

impl EmittedWindow {
    fn new(fingerprint: u64, revision: i32, debounced: u64, strong: bool) -> EmittedWindow {
        let mut emitted = EmittedWindow {
            fingerprint,
            revision,
            packed: NonZeroU32::MIN,
        };
        emitted.set(debounced, strong);
        emitted
    }

    fn set(&mut self, debounced: u64, strong: bool) {
        let count = debounced.min(MAX_DEBOUNCED) as u32 + 1;
        let weak = if strong { 0 } else { WEAK };
        self.packed = NonZeroU32::new(count | weak).unwrap_or(NonZeroU32::MIN);
    }

    fn debounced(&self) -> u64 {
        u64::from((self.packed.get() & !WEAK) - 1)
    }

    fn strong(&self) -> bool {
        self.packed.get() & WEAK == 0
    }

    /// Whether `window`, whose fingerprint is `fp`, is what was emitted.
    fn matches(&mut self, fp: u64, window: &StationWindow) -> bool {
        let legacy = || fingerprint::legacy_window(window);
        let mut strong = self.strong();
        let same = same_fingerprint(&mut self.fingerprint, &mut strong, fp, legacy);
        self.set(self.debounced(), strong);
        same
    }
}

impl EmittedWindow {
    fn save(self) -> format2::EmittedWindow {
        format2::EmittedWindow {
            fingerprint: self.fingerprint,
            strong: self.strong(),
            revision: self.revision,
            debounced: self.debounced(),
        }
    }

    fn load(saved: format2::EmittedWindow) -> EmittedWindow {
        EmittedWindow::new(
            saved.fingerprint,
            saved.revision,
            saved.debounced,
            saved.strong,
        )
    }
}

impl EmittedEvent {
    fn save(&self) -> format2::EmittedEvent {
        format2::EmittedEvent {
            end: self.end,
            fingerprint: self.fingerprint,
            strong: self.strong,
            revision: self.revision,
            retracted: self.retracted,
        }
    }

    fn load(saved: format2::EmittedEvent) -> EmittedEvent {
        EmittedEvent {
            end: saved.end,
            fingerprint: saved.fingerprint,
            revision: saved.revision,
            retracted: saved.retracted,
            strong: saved.strong,
        }
    }
}

/// Whether the `stored` fingerprint is `fp`. An FxHash one (not `strong`) is compared
/// with the row's `legacy` fingerprint and, when that matches, replaced by `fp`.
fn same_fingerprint(
    stored: &mut u64,
    strong: &mut bool,
    fp: u64,
    legacy: impl FnOnce() -> u64,
) -> bool {
    if !*strong && *stored == legacy() {
        (*stored, *strong) = (fp, true);
    }
    *strong && *stored == fp
}

#[derive(Debug, Clone, PartialEq)]
struct EmittedEvent {
    end: i64,
    fingerprint: u64,
    revision: i32,
    retracted: bool,
    /// As `EmittedWindow::strong`.
    strong: bool,
}

/// The events emitted, by start: boxed, as most stations hold none (an empty map inline
/// took 24 bytes of every station's state, a box takes 8).
#[derive(Debug, Clone, Default)]
#[allow(clippy::box_collection)] // the box is the point: 8 bytes inline, not 24
struct EmittedEvents(Option<Box<BTreeMap<i64, EmittedEvent>>>);

impl EmittedEvents {
    fn get_mut(&mut self, start: i64) -> Option<&mut EmittedEvent> {
        self.0.as_mut().and_then(|m| m.get_mut(&start))
    }

    fn insert(&mut self, start: i64, event: EmittedEvent) {
        self.0.get_or_insert_default().insert(start, event);
    }

    fn remove(&mut self, start: i64) {
        if let Some(m) = &mut self.0 {
            m.remove(&start);
            if m.is_empty() {
                self.0 = None;
            }
        }
    }

    fn range(&self, range: impl RangeBounds<i64>) -> impl Iterator<Item = (&i64, &EmittedEvent)> {
        self.0
            .iter()
            .flat_map(move |m| m.range((range.start_bound().cloned(), range.end_bound().cloned())))
    }

    fn iter(&self) -> impl Iterator<Item = (&i64, &EmittedEvent)> {
        self.range(..)
    }
}

impl FromIterator<(i64, EmittedEvent)> for EmittedEvents {
    fn from_iter<I: IntoIterator<Item = (i64, EmittedEvent)>>(iter: I) -> Self {
        let map: BTreeMap<i64, EmittedEvent> = iter.into_iter().collect();
        EmittedEvents((!map.is_empty()).then(|| Box::new(map)))
    }
}

impl EmittedEvent {
    /// As `EmittedWindow::matches`.
    fn matches(&mut self, fp: u64, event: &DowntimeEvent) -> bool {
        let legacy = || fingerprint::legacy_event(event);
        same_fingerprint(&mut self.fingerprint, &mut self.strong, fp, legacy)
    }
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Applied,
    Duplicate,
}

/// Rows an advance emits, handed to a sink (or back) in order per station.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Station windows: new ones (revision 0) and revisions.
    pub windows: Vec<StationWindow>,
    /// Downtime events: new ones and revisions.
    pub events: Vec<DowntimeEvent>,
}

/// Laid out by hand (`repr(C)`, on cache lines of its own): what inserting a record
/// reads and writes lies in lines 1 to 3, from the event log's hot part through the
/// fields after it to the seq set's bitmap; the first four fields and the event log's
/// cold blocks fill line 0. With a thousand stations a batch reaches each station's
/// state out of cache, a miss for every line it touches. Five lines in all: its code is
/// the context's (by `id`), not a copy, and its optional instants take 8 bytes each.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct StationOp {
    emitted_from: i64,
    /// Debounced completions in windows already dropped from `emitted`.
    debounced_pruned: u64,
    shifts: ShiftCache,
    /// Until this horizon the station counts as sending late records (`LATE_FOR_MS`).
    late_until: i64,
    records: EventLog,
    pub(crate) max_ts: MaybeTime,
    dirty_from: MaybeTime,
    /// The driver's `now` when this station last received a record.
    pub(crate) last_seen: MaybeTime,
    /// Windows ending at or before this instant have been emitted (minute aligned).
    pub(crate) horizon: i64,
    pub(crate) id: StationId,
    seqs: SeqSet,
    snapshots: Snapshots<Snapshot>,
    emitted: VecDeque<Option<EmittedWindow>>,
    events: EmittedEvents,
}

/// The output of walking minutes forward from a snapshot.
struct Walk {
    from: i64,
    /// The state at `from`, as its snapshot packs it.
    start_state: StationState,
    facts: Vec<MinuteFacts>,
    /// State at the start of each minute after `from`, and at the end.
    states: Vec<StationState>,
    closed: Vec<ClosedSpan>,
    end_state: StationState,
}

impl Walk {
    /// Whether the span anchored at `anchor` counted as downtime by the end of the walk.
    fn qualified(&self, anchor: i64, horizon: i64) -> Option<bool> {
        if let Some(c) = self.closed_span(anchor) {
            return Some(c.qualified);
        }
        let p = self.end_state.pending.filter(|p| p.anchor == anchor)?;
        Some(p.qualified_at(horizon))
    }

    /// The span anchored at `anchor` that closed in the walk (closed spans are in
    /// anchor order).
    fn closed_span(&self, anchor: i64) -> Option<&ClosedSpan> {
        let i = self.closed.partition_point(|c| c.span.anchor < anchor);
        self.closed.get(i).filter(|c| c.span.anchor == anchor)
    }

    /// Detected downtime spans: qualified stops and gaps, closed or still open.
    fn downtime_spans(&self, horizon: i64) -> Vec<(i64, i64)> {
        let mut spans: Vec<(i64, i64)> = self
            .closed
            .iter()
            .filter(|c| c.qualified)
            .map(|c| (c.span.downtime_from, c.end))
            .collect();
        if let Some(p) = self.end_state.pending {
            if p.qualified_at(horizon) {
                spans.push((p.downtime_from, horizon));
            }
        }
        spans.sort_unstable();
        spans
    }
}

/// What one refresh works with.
struct Env<'a> {
    ctx: &'a ContextIndex,
    errors: &'a ErrorCodes,
    horizon: i64,
    now: i64,
}

/// An event being accumulated over consecutive downtime pieces.
struct OpenEvent {
    start: i64,
    end: i64,
    downtime_ms: i64,
    reasons: BTreeMap<String, i64>,
    error: Option<u32>,
}

impl StationOp {
    pub fn new(id: StationId, origin: i64) -> Self {
        let mut snapshots = Snapshots::default();
        snapshots.insert(
            origin,
            Snapshot::new(&StationState::default(), origin, false),
        );
        StationOp {
            id,
            records: EventLog::default(),
            seqs: SeqSet::default(),
            snapshots,
            max_ts: MaybeTime::NONE,
            horizon: origin,
            emitted_from: origin,
            emitted: VecDeque::new(),
            events: EmittedEvents::default(),
            dirty_from: MaybeTime::NONE,
            last_seen: MaybeTime::NONE,
            debounced_pruned: 0,
            shifts: ShiftCache::default(),
            late_until: i64::MIN,
        }
    }

    /// The first minute this station still holds; older records are too late.
    pub fn earliest(&self) -> i64 {
        self.snapshots.first().unwrap_or(self.horizon)
    }

    /// Extends the station's history back to an earlier origin (a late record from
    /// before anything seen so far).
    pub fn extend_origin(&mut self, origin: i64) {
        if origin >= self.emitted_from {
            return;
        }
        // The origin is the earliest minute of any record: nothing precedes it.
        let empty = Snapshot::new(&StationState::default(), origin, false);
        self.snapshots.insert(origin, empty);
        let missing = ((self.emitted_from - origin) / MINUTE_MS) as usize;
        for _ in 0..missing {
            self.emitted.push_front(None);
        }
        self.emitted_from = origin;
        self.mark_dirty(origin);
    }

    /// The station as a checkpoint keeps it, under `code`.
    pub fn save(&self, code: &str) -> format2::Station {
        format2::Station {
            code: code.to_string(),
            emitted_from: self.emitted_from,
            records: self.records.save(),
            max_ts: self.max_ts.get(),
            dirty_from: self.dirty_from.get(),
            last_seen: self.last_seen.get(),
            horizon: self.horizon,
            seqs: self.seqs.save(),
            snapshots: (self.snapshots.iter())
                .map(|(minute, s)| (minute, s.save(minute)))
                .collect(),
            emitted: (self.emitted.iter()).map(|e| e.map(|e| e.save())).collect(),
            events: (self.events.iter())
                .map(|(start, e)| (*start, e.save()))
                .collect(),
            debounced_pruned: self.debounced_pruned,
            late_until: self.late_until,
        }
    }

    /// Whether a checkpoint's station, which knows `error_codes` codes, is whole: the
    /// first fault otherwise. One that passes does not fail when restored and run on.
    pub fn check_saved(saved: &format2::Station, error_codes: usize) -> Result<(), String> {
        let aligned = |t: i64| t.rem_euclid(MINUTE_MS) == 0;
        if !aligned(saved.horizon) || !aligned(saved.emitted_from) {
            return Err("its horizon or first window is not at a minute".into());
        }
        match saved.snapshots.first_key_value() {
            Some((first, _)) if *first <= saved.horizon => {}
            _ => return Err("it has no state at or before its horizon".into()),
        }
        for (minute, s) in &saved.snapshots {
            if !aligned(*minute) {
                return Err(format!("its state at {minute} is not at a minute"));
            }
            StationState::check_saved(&s.state, error_codes)
                .map_err(|e| format!("its state at {minute}: {e}"))?;
        }
        if let Some(e) = (saved.emitted.iter().flatten()).find(|e| e.debounced > MAX_DEBOUNCED) {
            return Err(format!(
                "a window has {} debounced completions",
                e.debounced
            ));
        }
        if !saved.seqs.base.is_multiple_of(64) {
            return Err(format!("its seq numbers start at {}", saved.seqs.base));
        }
        event_log::check_saved(&saved.records, error_codes)
    }

    /// The station of a checkpoint (`check_saved` passed), as context station `id`.
    pub fn load(saved: format2::Station, id: StationId, errors: &ErrorCodes) -> StationOp {
        StationOp {
            emitted_from: saved.emitted_from,
            records: EventLog::load(saved.records, errors),
            max_ts: MaybeTime::new(saved.max_ts),
            dirty_from: MaybeTime::new(saved.dirty_from),
            last_seen: MaybeTime::new(saved.last_seen),
            horizon: saved.horizon,
            id,
            seqs: SeqSet::load(saved.seqs),
            snapshots: (saved.snapshots.into_iter())
                .map(|(minute, s)| (minute, Snapshot::load(s, minute)))
                .collect(),
            emitted: (saved.emitted.into_iter())
                .map(|e| e.map(EmittedWindow::load))
                .collect(),
            events: (saved.events.into_iter())
                .map(|(start, e)| (start, EmittedEvent::load(e)))
                .collect(),
            debounced_pruned: saved.debounced_pruned,
            shifts: ShiftCache::default(),
            late_until: saved.late_until,
        }
    }

    /// Forgets what was derived from the old context (shift occurrences).
    pub fn context_changed(&mut self) {
        self.shifts = ShiftCache::default();
    }

    pub fn mark_dirty(&mut self, from: i64) {
        if from < self.horizon {
            self.dirty_from = self.dirty_from.min_with(from);
        }
    }

    /// Inserts a record in event-time order, or recognises it as a duplicate: the same
    /// `seq`, or without `seq` the same `ts` and observations.
    /// `rec` is taken when applied and left as it was when a duplicate.
    pub fn insert(&mut self, rec: &mut Rec, errors: &ErrorCodes) -> Insert {
        if let Some(seq) = rec.seq() {
            if !self.seqs.insert(seq) {
                return Insert::Duplicate;
            }
        } else if self.records.contains_same(rec, errors) {
            return Insert::Duplicate;
        }
        self.max_ts = self.max_ts.max_with(rec.ts);
        self.mark_dirty(rec.ts);
        self.records.insert(rec, errors);
        Insert::Applied
    }

    /// Asks the processor for the place of this station's next `count` records.
    pub fn prefetch_appends(&self, count: usize) {
        self.records.prefetch_appends(count);
    }

    /// Whether a refresh to `horizon` would do anything.
    pub fn needs_refresh(&self, horizon: i64) -> bool {
        self.dirty_from.is_some() || horizon > self.horizon
    }

    /// Total debounced completions in the latest windows.
    pub fn debounced(&self) -> u64 {
        self.debounced_pruned
            + self
                .emitted
                .iter()
                .flatten()
                .map(|e| e.debounced())
                .sum::<u64>()
    }

    /// Recomputes what changed and moves the horizon to `horizon` (minute aligned, never
    /// backwards). `retention_floor`: windows before it are no longer revised. The rows
    /// it emits are appended to `out` (straight where the caller collects them: rows
    /// are large, and moving them over cost a copy and an allocation per refresh); it
    /// returns the downtime span still open at the horizon, if any (`end` = the horizon).
    pub fn refresh(
        &mut self,
        ctx: &ContextIndex,
        errors: &ErrorCodes,
        horizon: i64,
        retention_floor: i64,
        now: i64,
        out: &mut Emitted,
    ) -> Option<DowntimeEvent> {
        let horizon = horizon.max(self.horizon);
        if !self.needs_refresh(horizon) {
            return None;
        }
        let changed_from = minute_floor(
            self.dirty_from
                .get()
                .unwrap_or(self.horizon)
                .min(self.horizon),
        );
        let mut from = self.snapshot_at_or_before(changed_from);
        let walk = loop {
            let walk = self.walk(ctx, errors, from, horizon);
            match self.rewind_to(&walk, changed_from, horizon, errors) {
                Some(to) if to < from => from = to,
                _ => break walk,
            }
        };
        let env = Env {
            ctx,
            errors,
            horizon,
            now,
        };
        let underway = self.emit(&env, &walk, out);
        let dense_from = self.horizon - self.snapshot_spacing(self.horizon).0;
        if self.dirty_from.is_some() {
            self.late_until = self.late_until.max(horizon + LATE_FOR_MS);
        }
        self.keep_snapshots(&walk, horizon, dense_from);
        self.horizon = horizon;
        self.dirty_from = MaybeTime::NONE;
        self.prune(retention_floor, errors);
        self.records.cool(horizon);
        underway
    }

    fn snapshot_at_or_before(&self, t: i64) -> i64 {
        self.snapshots
            .at_or_before(t)
            .unwrap_or_else(|| self.earliest())
    }

    /// Where a walk must restart so that every span it resolves is seen from its start.
    fn rewind_to(
        &self,
        walk: &Walk,
        changed_from: i64,
        horizon: i64,
        errors: &ErrorCodes,
    ) -> Option<i64> {
        let snap = &self.snapshots[walk.from];
        let state = &walk.start_state;
        let mut target: Option<i64> = None;
        let mut earlier = |t: i64| target = Some(target.map_or(t, |x: i64| x.min(t)));
        if let Some(p) = state.pending.filter(|p| p.anchor < walk.from) {
            let q = walk.qualified(p.anchor, horizon).unwrap_or(false);
            let closes_in_change = walk
                .closed_span(p.anchor)
                .map(|c| c.end)
                .is_some_and(|e| e >= changed_from);
            if q != snap.pending_qualified() || (q && closes_in_change) {
                earlier(p.anchor);
            }
        }
        if let Some(since) = state.no_data_since(walk.from).filter(|s| *s < walk.from) {
            let first = self.records.first_ts_at_or_after(walk.from, errors);
            if first.is_some_and(|t| t < horizon && t >= changed_from) {
                earlier(since);
            }
        }
        let t = target?;
        let to = self.snapshot_at_or_before(t);
        (to < walk.from).then_some(to)
    }

    fn walk(&mut self, ctx: &ContextIndex, errors: &ErrorCodes, from: i64, horizon: i64) -> Walk {
        let start_state = self.snapshots[from].unpack(from);
        let mut walker = Walker::new(start_state.clone());
        let minutes = ((horizon - from).max(0) / MINUTE_MS) as usize;
        let mut facts = Vec::with_capacity(minutes);
        let mut states = Vec::with_capacity(minutes);
        let hot_from = self.records.hot_from();
        let (cold, hot) = self.records.from(from, errors);
        let (mut ci, mut hi) = (0usize, 0usize);
        for m in 0..minutes {
            let w = from + m as i64 * MINUTE_MS;
            let plan = ctx.plan(self.id, w, w + MINUTE_MS, &mut self.shifts);
            // A minute's records follow the cursor: scan rather than search.
            let (records, i) = if w < hot_from {
                (&cold[..], &mut ci)
            } else {
                (hot, &mut hi)
            };
            let j = *i
                + records[*i..]
                    .iter()
                    .take_while(|r| r.ts < w + MINUTE_MS)
                    .count();
            facts.push(walker.minute(w, plan, &records[*i..j]));
            states.push(walker.state.clone());
            *i = j;
        }
        Walk {
            from,
            start_state,
            facts,
            end_state: walker.state.clone(),
            states,
            closed: walker.closed,
        }
    }

    fn emit(&mut self, env: &Env, walk: &Walk, out: &mut Emitted) -> Option<DowntimeEvent> {
        let (errors, horizon, now) = (env.errors, env.horizon, env.now);
        let spans = walk.downtime_spans(horizon);
        let code = env.ctx.station_code(self.id);
        let mut underway = None;
        let mut open: Option<OpenEvent> = None;
        let mut closed_events: Vec<OpenEvent> = Vec::new();
        let mut first_span = 0usize;
        for facts in &walk.facts {
            let (w0, w1) = (facts.start, facts.start + MINUTE_MS);
            while first_span < spans.len() && spans[first_span].1 <= w0 {
                first_span += 1;
            }
            let overlapping: Vec<(i64, i64)> = spans[first_span..]
                .iter()
                .take_while(|s| s.0 < w1)
                .copied()
                .collect();
            let (window, pieces) = metrics::window(code, facts, &overlapping, errors);
            accumulate_events(&mut open, &mut closed_events, &pieces);
            self.offer_window(window, facts.debounced, now, out);
        }
        if let Some(e) = open.take() {
            if e.end < horizon {
                closed_events.push(e);
            } else if e.downtime_ms > 0 {
                underway = Some(self.underway(env, walk, e));
            }
        }
        self.offer_events(env, walk, closed_events, out);
        underway
    }

    /// The open span as an event row, from its true start.
    fn underway(&self, env: &Env, walk: &Walk, mut e: OpenEvent) -> DowntimeEvent {
        if e.start == walk.from {
            e.start = self.carried_downtime(walk, env.horizon).unwrap_or(e.start);
        }
        let (code, settings) = (
            env.ctx.station_code(self.id),
            env.ctx.station_latest(self.id),
        );
        event_row(code, settings, &e, env.errors, env.now)
    }

    fn offer_window(
        &mut self,
        mut window: StationWindow,
        debounced: u64,
        now: i64,
        out: &mut Emitted,
    ) {
        if window.window_start < self.emitted_from {
            return;
        }
        let idx = ((window.window_start - self.emitted_from) / MINUTE_MS) as usize;
        if self.emitted.len() <= idx {
            grow_to(&mut self.emitted, idx + 1);
        }
        let fp = fingerprint::window(&window);
        let slot = &mut self.emitted[idx];
        let revision = match slot {
            Some(prev) => {
                if prev.matches(fp, &window) {
                    prev.set(debounced, true);
                    return;
                }
                prev.revision + 1
            }
            None => 0,
        };
        *slot = Some(EmittedWindow::new(fp, revision, debounced, true));
        window.revision = revision;
        window.emitted_at = now;
        out.windows.push(window);
    }

    /// Emits the events the walk saw whole, and retracts those it saw from their start
    /// and no longer finds closed (gone, or merged into a downtime still open).
    fn offer_events(&mut self, env: &Env, walk: &Walk, closed: Vec<OpenEvent>, out: &mut Emitted) {
        let (errors, horizon, now) = (env.errors, env.horizon, env.now);
        let code = env.ctx.station_code(self.id).clone();
        let settings = env.ctx.station_latest(self.id).clone();
        // An event already under way when the walk began is seen only in part: skipped,
        // unless it began before the retained history (no earlier snapshot to rewind
        // to); then it keeps its true start and counts the retained part.
        let carried = self.carried_downtime(walk, horizon);
        let partial_start = carried
            .filter(|_| walk.from != self.earliest())
            .map(|_| walk.from);
        let mut seen = Vec::new();
        for mut e in closed {
            if Some(e.start) == partial_start || e.downtime_ms == 0 {
                continue;
            }
            if e.start == walk.from {
                e.start = carried.unwrap_or(e.start);
            }
            seen.push(e.start);
            self.offer_event(
                &mut event_row(&code, &settings, &e, errors, now),
                false,
                out,
            );
        }
        let gone: Vec<(i64, i64)> = self
            .events
            .range(walk.from..)
            .filter(|(start, e)| {
                !e.retracted && !seen.contains(start) && Some(**start) != partial_start
            })
            .map(|(start, e)| (*start, e.end))
            .collect();
        for (start, end) in gone {
            let retracted = OpenEvent {
                start,
                end,
                downtime_ms: 0,
                reasons: BTreeMap::from([("retracted".to_string(), 0)]),
                error: None,
            };
            let mut event = event_row(&code, &settings, &retracted, errors, now);
            event.duration_s = 0.0;
            self.offer_event(&mut event, true, out);
        }
    }

    /// Where the downtime under way at the walk's first instant began, if it began
    /// before the walk.
    fn carried_downtime(&self, walk: &Walk, horizon: i64) -> Option<i64> {
        let state = &walk.start_state;
        let no_data = state.no_data_since(walk.from).filter(|s| *s < walk.from);
        let stop = state
            .pending
            .filter(|p| {
                p.downtime_from < walk.from && walk.qualified(p.anchor, horizon) == Some(true)
            })
            .map(|p| p.downtime_from);
        match (no_data, stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn offer_event(&mut self, event: &mut DowntimeEvent, retracted: bool, out: &mut Emitted) {
        let fp = fingerprint::event(event);
        let revision = match self.events.get_mut(event.start) {
            Some(prev) => {
                if prev.matches(fp, event) {
                    return;
                }
                prev.revision + 1
            }
            None if retracted => return,
            None => 0,
        };
        event.revision = revision;
        self.events.insert(
            event.start,
            EmittedEvent {
                end: event.end,
                fingerprint: fp,
                revision,
                retracted,
                strong: true,
            },
        );
        out.events.push(event.clone());
    }

    /// How far back from `horizon` a snapshot is kept every minute, and the spacing of
    /// those before: wider while the station's records come in order.
    fn snapshot_spacing(&self, horizon: i64) -> (i64, i64) {
        if horizon < self.late_until {
            (DENSE_SNAPSHOT_MS, SPARSE_SNAPSHOT_MS)
        } else {
            (IN_ORDER_DENSE_SNAPSHOT_MS, IN_ORDER_SPARSE_SNAPSHOT_MS)
        }
    }

    /// Stores the states the walk passed, with what their pending span resolved to.
    /// `dense_from`: where the dense snapshots began before this refresh.
    fn keep_snapshots(&mut self, walk: &Walk, horizon: i64, dense_from: i64) {
        let (dense_span, spacing) = self.snapshot_spacing(horizon);
        // Snapshots that just left the dense span thin out to sparse ones first, so that
        // the ring never holds more than it keeps; the earliest stays as the base of
        // every recomputation.
        let earliest = self.earliest();
        let left_dense = dense_from.max(earliest + 1)..(horizon - dense_span);
        if !left_dense.is_empty() {
            self.snapshots
                .thin(left_dense, |k| k.rem_euclid(spacing) == 0);
        }
        for (m, state) in walk.states.iter().enumerate() {
            let at = walk.from + (m as i64 + 1) * MINUTE_MS;
            let dense = horizon - at <= dense_span;
            if !dense && at.rem_euclid(spacing) != 0 {
                self.snapshots.remove(at);
                continue;
            }
            let pending_qualified = state
                .pending
                .and_then(|p| walk.qualified(p.anchor, horizon))
                .unwrap_or(false);
            self.snapshots
                .insert(at, Snapshot::new(state, at, pending_qualified));
        }
    }

    /// Forgets what lies before the allowed lateness (plus a margin for open stops).
    fn prune(&mut self, retention_floor: i64, errors: &ErrorCodes) {
        let keep_from = self.snapshot_at_or_before(retention_floor - RETENTION_MARGIN_MS);
        self.snapshots.remove_before(keep_from);
        let seqs = &mut self.seqs;
        self.records.prune_before(keep_from, errors, |r| {
            if let Some(seq) = r.seq() {
                seqs.remove(seq);
            }
        });
        while self.emitted_from < keep_from && !self.emitted.is_empty() {
            if let Some(Some(e)) = self.emitted.pop_front() {
                self.debounced_pruned += e.debounced();
            }
            self.emitted_from += MINUTE_MS;
        }
        // Only a span that began before `keep_from` can have ended before it: the rest of
        // the map (every span of the allowed lateness) is not walked.
        let ended: Vec<i64> = (self.events.range(..keep_from))
            .filter(|(_, e)| e.end < keep_from)
            .map(|(start, _)| *start)
            .collect();
        for start in ended {
            self.events.remove(start);
        }
    }
}

/// A downtime span as a `downtime_events` row: its reason is the one with the most
/// downtime seconds in it.
fn event_row(
    code: &str,
    settings: &StationSettings,
    e: &OpenEvent,
    errors: &ErrorCodes,
    now: i64,
) -> DowntimeEvent {
    let reason = e
        .reasons
        .iter()
        .max_by_key(|(name, ms)| (**ms, std::cmp::Reverse(name.as_str())))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| "unassigned".into());
    DowntimeEvent {
        plant: String::from(&*settings.plant),
        line: settings.line.as_deref().map(str::to_string),
        station: String::from(code),
        start: e.start,
        end: e.end,
        duration_s: (e.end - e.start) as f64 / 1000.0,
        downtime_s: e.downtime_ms as f64 / 1000.0,
        reason,
        error_code: e.error.map(|id| errors.name(id).to_string()),
        revision: 0,
        emitted_at: now,
    }
}

fn accumulate_events(
    open: &mut Option<OpenEvent>,
    closed: &mut Vec<OpenEvent>,
    pieces: &[DowntimePiece],
) {
    for p in pieces {
        match open {
            Some(e) if e.end == p.start => e.end = p.end,
            _ => {
                if let Some(e) = open.take() {
                    closed.push(e);
                }
                *open = Some(OpenEvent {
                    start: p.start,
                    end: p.end,
                    downtime_ms: 0,
                    reasons: BTreeMap::new(),
                    error: None,
                });
            }
        }
        let e = open.as_mut().expect("an event is open");
        if p.planned {
            e.downtime_ms += p.end - p.start;
            *e.reasons.entry(p.reason.clone()).or_default() += p.end - p.start;
        }
        e.error = e.error.or(p.error);
    }
}

/// Lengthens the ring of emitted windows to `len`, growing it by one window while it
/// is short and by a quarter beyond: a station keeps one a minute of its allowed
/// lateness and the margin before it, and doubling left most stations with room for
/// nearly twice that (at a million stations, hundreds of megabytes).
fn grow_to(emitted: &mut VecDeque<Option<EmittedWindow>>, len: usize) {
    const BY_ONE_BELOW: usize = 32;
    if len > emitted.capacity() {
        let more = if len < BY_ONE_BELOW {
            len - emitted.len()
        } else {
            (len - emitted.len()).max(len / 4)
        };
        emitted.reserve_exact(more);
    }
    emitted.resize(len, None);
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of};

    use super::*;

    /// The fields an insert touches, from the event log's hot part to the seq set's
    /// bitmap, stay within cache lines 1 to 3 of a station's state.
    #[test]
    fn what_an_insert_touches_lies_in_three_cache_lines() {
        assert_eq!(align_of::<StationOp>(), 64);
        assert_eq!(std::mem::size_of::<StationOp>(), 5 * 64);
        let first = offset_of!(StationOp, records) + EventLog::HOT_PART_OFFSET;
        let last = offset_of!(StationOp, seqs) + SeqSet::INSERT_PART_END;
        assert!(first >= 64 && last <= 256, "{first}..{last}");
        for field in [
            offset_of!(StationOp, max_ts),
            offset_of!(StationOp, dirty_from),
            offset_of!(StationOp, last_seen),
            offset_of!(StationOp, horizon),
            offset_of!(StationOp, id),
        ] {
            assert!((first..last).contains(&field), "{field}");
        }
    }

    /// Checkpoints made before SipHash hold FxHash fingerprints: a window or event that
    /// has not changed is not emitted again, and its fingerprint becomes a SipHash one.
    #[test]
    fn fingerprints_from_an_older_checkpoint_are_compared_as_they_were_made() {
        let window = StationWindow {
            energy_kwh: Some(64.0),
            ..StationWindow::default()
        };
        let other = StationWindow {
            energy_kwh: Some(0.0),
            ..window.clone()
        };
        let legacy = fingerprint::legacy_window(&window);
        let mut emitted = EmittedWindow::new(legacy, 3, 7, false);
        assert!(!emitted.matches(fingerprint::window(&other), &other));
        assert!(!emitted.strong());
        assert!(emitted.matches(fingerprint::window(&window), &window));
        assert!(emitted.strong() && emitted.fingerprint == fingerprint::window(&window));
        assert_eq!((emitted.revision, emitted.debounced()), (3, 7));
        // The flag lies in the count's top bit, and `Option` uses the count's zero.
        assert_eq!(std::mem::size_of::<Option<EmittedWindow>>(), 16);
        let most = EmittedWindow::new(1, 0, MAX_DEBOUNCED, false);
        assert_eq!((most.debounced(), most.strong()), (MAX_DEBOUNCED, false));

        let event = DowntimeEvent {
            plant: "P".into(),
            line: None,
            station: "S".into(),
            start: 0,
            end: 60_000,
            duration_s: 60.0,
            downtime_s: 60.0,
            reason: "unplanned".into(),
            error_code: None,
            revision: 0,
            emitted_at: 0,
        };
        let legacy = fingerprint::legacy_event(&event);
        let mut emitted = EmittedEvent {
            end: 0,
            fingerprint: legacy,
            revision: 0,
            retracted: false,
            strong: false,
        };
        let longer = DowntimeEvent {
            end: 120_000,
            downtime_s: 120.0,
            ..event.clone()
        };
        assert!(!emitted.matches(fingerprint::event(&longer), &longer));
        assert!(emitted.matches(fingerprint::event(&event), &event));
        assert!(emitted.strong);
    }
}
