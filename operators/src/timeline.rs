//! Layer one of a window: the station's state over event time. Walking a minute's
//! records from the state at its start gives the minute's facts — state segments
//! (productive, idle, no data), quantities per context part, energy, averages — and the
//! stops and cycle gaps that closed in it. Nothing here depends on records after the
//! minute, so the state at a minute boundary is a valid restart point (a snapshot).

use smallvec::SmallVec;
use stationflow_schemas::context::DowntimeDetection;

use crate::checkpoint::format2;
use crate::plan::{part_index_at, Plan, PlanPart};
use crate::record::{check_error_id, ErrorId, Obs, Rec};

/// What the station is doing over a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Productive,
    Idle,
    /// Stale: the station had data and went quiet.
    NoData,
    /// Before the station's first record: no data, but no downtime event either.
    NeverReported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub activity: Activity,
    /// The active error code; never set during no data.
    pub error: Option<ErrorId>,
}

impl Activity {
    pub fn has_data(self) -> bool {
        matches!(self, Activity::Productive | Activity::Idle)
    }
}

/// A stop (utilisation) or cycle gap (production_cycle) that may become downtime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingSpan {
    /// Stop start, or the completion the gap is counted from.
    pub anchor: i64,
    /// Downtime starts here once the span qualifies (anchor + one ideal cycle for gaps).
    pub downtime_from: i64,
    /// The span qualifies once it lasts this long from the anchor.
    pub qualify_after_ms: i64,
}

impl PendingSpan {
    /// Counts as downtime by `t`: it has lasted long enough and its downtime has begun.
    pub fn qualified_at(&self, t: i64) -> bool {
        t - self.anchor >= self.qualify_after_ms && t > self.downtime_from
    }
}

/// A pending span that ended: where it started and whether it counted as downtime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedSpan {
    pub span: PendingSpan,
    pub end: i64,
    pub qualified: bool,
}

/// Everything later minutes need from earlier ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationState {
    pub productive: bool,
    pub error: Option<ErrorId>,
    pub last_record_ts: Option<i64>,
    /// Data until this instant (last record + `stale_after_s`).
    pub stale_at: Option<i64>,
    pub good_total: Option<f64>,
    pub bad_total: Option<f64>,
    pub kwh_total: Option<f64>,
    /// Last completion that was counted (debounce reference).
    pub last_completion_ts: Option<i64>,
    pub line_speed: Option<f64>,
    pub rssi: Option<f64>,
    /// The open stop (utilisation) or cycle gap (production_cycle).
    pub pending: Option<PendingSpan>,
}

impl StationState {
    /// Start of the no-data span covering `t`, if the station had data before it.
    pub fn no_data_since(&self, t: i64) -> Option<i64> {
        self.stale_at.filter(|s| t >= *s)
    }
}

impl StationState {
    /// The state as a checkpoint keeps it.
    pub fn save(&self) -> format2::State {
        format2::State {
            productive: self.productive,
            error: self.error,
            last_record_ts: self.last_record_ts,
            stale_at: self.stale_at,
            good_total: self.good_total,
            bad_total: self.bad_total,
            kwh_total: self.kwh_total,
            last_completion_ts: self.last_completion_ts,
            line_speed: self.line_speed,
            rssi: self.rssi,
            pending: self.pending.map(|p| format2::PendingSpan {
                anchor: p.anchor,
                downtime_from: p.downtime_from,
                qualify_after_ms: p.qualify_after_ms,
            }),
        }
    }

    /// Whether a checkpoint's state, which knows `error_codes` codes, knows its code.
    pub fn check_saved(saved: &format2::State, error_codes: usize) -> Result<(), String> {
        check_error_id(saved.error, error_codes)
    }

    /// The state of a checkpoint (`check_saved` passed).
    pub fn load(saved: format2::State) -> StationState {
        StationState {
            productive: saved.productive,
            error: saved.error,
            last_record_ts: saved.last_record_ts,
            stale_at: saved.stale_at,
            good_total: saved.good_total,
            bad_total: saved.bad_total,
            kwh_total: saved.kwh_total,
            last_completion_ts: saved.last_completion_ts,
            line_speed: saved.line_speed,
            rssi: saved.rssi,
            pending: saved.pending.map(|p| PendingSpan {
                anchor: p.anchor,
                downtime_from: p.downtime_from,
                qualify_after_ms: p.qualify_after_ms,
            }),
        }
    }
}

/// Quantities of one context part of a minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartFacts {
    pub good: f64,
    pub bad: f64,
    /// Completed cycles (signal units before `parts_per_cycle`).
    pub cycles: f64,
    /// ∫ line_speed dt, in units/min × ms.
    pub speed_integral: f64,
    pub speed_ms: i64,
}

/// Layer-one facts of one station-minute.
#[derive(Debug, Clone)]
pub struct MinuteFacts {
    pub start: i64,
    pub plan: Plan,
    pub parts: SmallVec<[PartFacts; 2]>,
    pub segments: SmallVec<[Segment; 2]>,
    pub rssi_integral: f64,
    pub rssi_ms: i64,
    pub energy_kwh: Option<f64>,
    pub event_count: i64,
    pub has_counts: bool,
    pub debounced: u64,
}

/// Walks minutes forward from a state, collecting facts and closed spans.
pub struct Walker {
    pub state: StationState,
    pub closed: Vec<ClosedSpan>,
}

fn counter_delta(previous: &mut Option<f64>, value: f64) -> f64 {
    let delta = match *previous {
        None => 0.0,
        Some(p) if value < p => value,
        Some(p) => value - p,
    };
    *previous = Some(value);
    delta
}

impl Walker {
    pub fn new(state: StationState) -> Self {
        Walker {
            state,
            closed: Vec::new(),
        }
    }

    /// Walks the minute [start, start + 60 s) over its records (sorted, all inside it).
    pub fn minute(&mut self, start: i64, plan: Plan, records: &[Rec]) -> MinuteFacts {
        let end = plan.last().map_or(start, |p| p.end);
        let mut facts = MinuteFacts {
            start,
            parts: plan.iter().map(|_| PartFacts::default()).collect(),
            plan,
            segments: SmallVec::new(),
            rssi_integral: 0.0,
            rssi_ms: 0,
            energy_kwh: None,
            event_count: 0,
            has_counts: false,
            debounced: 0,
        };
        let mut cursor = start;
        for rec in records {
            self.advance(cursor, rec.ts, &mut facts);
            self.apply(rec, &mut facts);
            cursor = rec.ts;
        }
        self.advance(cursor, end, &mut facts);
        facts
    }

    /// Lets time pass from `from` to `to` with no record in between.
    fn advance(&mut self, mut from: i64, to: i64, facts: &mut MinuteFacts) {
        while from < to {
            let (activity, until) = match self.state.stale_at {
                Some(s) if from < s => {
                    let a = if self.state.productive {
                        Activity::Productive
                    } else {
                        Activity::Idle
                    };
                    (a, s.min(to))
                }
                Some(_) => (Activity::NoData, to),
                None => (Activity::NeverReported, to),
            };
            let error = if activity.has_data() {
                self.state.error
            } else {
                None
            };
            self.segment(from, until, activity, error, facts);
            from = until;
        }
    }

    fn segment(
        &mut self,
        start: i64,
        end: i64,
        activity: Activity,
        error: Option<ErrorId>,
        facts: &mut MinuteFacts,
    ) {
        let continued = match facts.segments.last_mut() {
            Some(last) if last.end == start && last.activity == activity && last.error == error => {
                last.end = end;
                true
            }
            _ => {
                facts.segments.push(Segment {
                    start,
                    end,
                    activity,
                    error,
                });
                false
            }
        };
        if activity.has_data() {
            if let Some(v) = self.state.rssi {
                facts.rssi_integral += v * (end - start) as f64;
                facts.rssi_ms += end - start;
            }
            if let Some(v) = self.state.line_speed {
                for (i, part) in facts.plan.iter().enumerate() {
                    let overlap = end.min(part.end) - start.max(part.start);
                    if overlap > 0 {
                        facts.parts[i].speed_integral += v * overlap as f64;
                        facts.parts[i].speed_ms += overlap;
                    }
                }
            }
        }
        // A continued segment's stop was tracked when it began. In a one-part minute
        // the detection is the same, and under utilisation only stop tracking changes
        // the pending span, so tracking it again would change nothing.
        if continued && facts.plan.len() == 1 {
            return;
        }
        let part = &facts.plan[part_index_at(&facts.plan, start)];
        if part.station.detection == DowntimeDetection::Utilisation {
            self.track_stop(start, activity, part.station.downtime_threshold_ms);
        }
    }

    fn track_stop(&mut self, at: i64, activity: Activity, threshold_ms: i64) {
        match (activity, self.state.pending) {
            (Activity::Productive, Some(span)) => self.close(span, at),
            (Activity::Idle | Activity::NoData | Activity::NeverReported, None) => {
                self.state.pending = Some(PendingSpan {
                    anchor: at,
                    downtime_from: at,
                    qualify_after_ms: threshold_ms,
                })
            }
            _ => {}
        }
    }

    fn close(&mut self, span: PendingSpan, end: i64) {
        self.closed.push(ClosedSpan {
            span,
            end,
            qualified: span.qualified_at(end),
        });
        self.state.pending = None;
    }

    fn apply(&mut self, rec: &Rec, facts: &mut MinuteFacts) {
        let state = &mut self.state;
        let (mut good, mut bad) = (0.0, 0.0);
        for o in &rec.obs {
            match *o {
                Obs::Productive(p) => state.productive = p,
                Obs::Error(e) => state.error = e,
                Obs::GoodDelta(v) => good += v,
                Obs::GoodTotal(v) => good += counter_delta(&mut state.good_total, v),
                Obs::BadDelta(v) => bad += v,
                Obs::BadTotal(v) => bad += counter_delta(&mut state.bad_total, v),
                Obs::LineSpeed(v) => state.line_speed = Some(v),
                Obs::KwhTotal(v) => {
                    let d = counter_delta(&mut state.kwh_total, v);
                    *facts.energy_kwh.get_or_insert(0.0) += d;
                }
                Obs::KwhDelta(v) => *facts.energy_kwh.get_or_insert(0.0) += v,
                Obs::Rssi(v) => state.rssi = Some(v),
            }
        }
        facts.event_count += 1;
        facts.has_counts |= rec.has_count();
        let i = part_index_at(&facts.plan, rec.ts);
        let part = &facts.plan[i];
        let first_record = state.last_record_ts.is_none();
        state.last_record_ts = Some(rec.ts);
        state.stale_at = Some(rec.ts + part.station.stale_after_ms);
        let cycle_mode = part.station.detection == DowntimeDetection::ProductionCycle;
        if good + bad > 0.0 {
            if state
                .last_completion_ts
                .is_some_and(|p| rec.ts - p < part.min_cycle_ms())
            {
                facts.debounced += 1;
                return;
            }
            state.last_completion_ts = Some(rec.ts);
            let ppc = part.parts_per_cycle();
            let pf = &mut facts.parts[i];
            pf.good += good * ppc;
            pf.bad += bad * ppc;
            pf.cycles += good + bad;
            if cycle_mode {
                self.restart_gap(rec.ts, part);
            }
        } else if first_record && cycle_mode && state.pending.is_none() {
            self.restart_gap(rec.ts, part);
        }
    }

    /// A completion (or the first record) starts a new cycle gap.
    fn restart_gap(&mut self, at: i64, part: &PlanPart) {
        if let Some(span) = self.state.pending {
            self.close(span, at);
        }
        self.state.pending = part.ideal_cycle_ms().map(|cycle| PendingSpan {
            anchor: at,
            downtime_from: at + cycle,
            qualify_after_ms: (cycle as f64 * part.downtime_multiplier()).round() as i64,
        });
    }
}
