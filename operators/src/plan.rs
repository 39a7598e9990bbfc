//! The context "as of" an instant (SPEC §3): for a station and a span of event time, the
//! parts with constant context — shift, break, planned stop, schedule, SKU, ideal cycle,
//! operator's downtime cause, and the station's and plant's settings of that moment.

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;
use smallvec::SmallVec;
use stationflow_schemas::context::{Context, DowntimeDetection, Ts};

use crate::intervals::{IntervalIndex, Versions};
use crate::shift_calendar::{ShiftCalendar, ShiftInstance};
use crate::station_codes::StationCodes;

/// Index of a configured station, in context order.
pub type StationId = u32;

const DAY_MS: i64 = 86_400_000;

/// A station's settings valid over some span of event time.
#[derive(Debug, Clone, PartialEq)]
pub struct StationSettings {
    pub code: Arc<str>,
    pub plant: Arc<str>,
    pub line: Option<Arc<str>>,
    pub shift_pattern: Option<Arc<str>>,
    pub all_shift_time_planned: bool,
    pub ideal_cycle_s: Option<f64>,
    pub detection: DowntimeDetection,
    pub downtime_threshold_ms: i64,
    pub downtime_multiplier: f64,
    pub idle_cost_per_minute: Option<f64>,
    pub speed_to_production_ratio: Option<f64>,
    pub line_speed_target: Option<f64>,
    pub stale_after_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlantSettings {
    pub code: Arc<str>,
    pub tz: Tz,
    pub currency: Option<Arc<str>>,
    pub day_start_hour: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkuSettings {
    pub code: Arc<str>,
    pub ideal_unit_s: Option<f64>,
    pub parts_per_cycle: f64,
    pub unit_value: Option<f64>,
    pub min_cycle_ms: i64,
    pub downtime_multiplier: Option<f64>,
    pub line_speed_target: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
struct ScheduleInfo {
    sku: Option<Arc<str>>,
    order_id: Option<Arc<str>>,
    ideal_cycle_s: Option<f64>,
}

/// A sub-span of a window with constant context.
#[derive(Debug, Clone)]
pub struct PlanPart {
    pub start: i64,
    pub end: i64,
    pub station: Arc<StationSettings>,
    pub plant: Arc<PlantSettings>,
    /// The shift occurrence covering this part (breaks included): name and shift date.
    pub shift: Option<(Arc<str>, i32)>,
    /// In shift and not in a break.
    pub working: bool,
    /// Working time inside a planned (non-production) stop.
    pub planned_stop: bool,
    /// Planned production time.
    pub planned: bool,
    pub sku: Option<Arc<SkuSettings>>,
    pub order_id: Option<Arc<str>>,
    /// Ideal seconds per unit: the schedule's override, else the SKU's, else the station's.
    pub ideal_unit_s: Option<f64>,
    /// An operator's downtime cause for this span.
    pub cause: Option<Arc<str>>,
}

impl PlanPart {
    pub fn len_ms(&self) -> i64 {
        self.end - self.start
    }
    pub fn parts_per_cycle(&self) -> f64 {
        self.sku.as_ref().map_or(1.0, |s| s.parts_per_cycle)
    }
    pub fn min_cycle_ms(&self) -> i64 {
        self.sku.as_ref().map_or(0, |s| s.min_cycle_ms)
    }
    pub fn unit_value(&self) -> Option<f64> {
        self.sku.as_ref().and_then(|s| s.unit_value)
    }
    pub fn downtime_multiplier(&self) -> f64 {
        self.sku
            .as_ref()
            .and_then(|s| s.downtime_multiplier)
            .unwrap_or(self.station.downtime_multiplier)
    }
    pub fn line_speed_target(&self) -> Option<f64> {
        self.sku
            .as_ref()
            .and_then(|s| s.line_speed_target)
            .or(self.station.line_speed_target)
    }
    /// Ideal milliseconds per cycle (`parts_per_cycle` units), for cycle-gap detection.
    pub fn ideal_cycle_ms(&self) -> Option<i64> {
        self.ideal_unit_s
            .map(|s| (s * self.parts_per_cycle() * 1000.0).round() as i64)
            .filter(|ms| *ms > 0)
    }
}

pub type Plan = SmallVec<[PlanPart; 2]>;

struct StationEntry {
    settings: Versions<Arc<StationSettings>>,
    schedules: IntervalIndex<Arc<ScheduleInfo>>,
    stops: IntervalIndex<()>,
    causes: IntervalIndex<Arc<str>>,
    calendar: Option<Arc<ShiftCalendar>>,
}

/// Read-only context, indexed for the lookups a station window needs.
pub struct ContextIndex {
    context: Context,
    stations: Vec<StationEntry>,
    by_code: StationCodes,
    plants: HashMap<String, Versions<Arc<PlantSettings>>>,
    skus: HashMap<String, Versions<Arc<SkuSettings>>>,
}

/// Shift occurrences a station has looked up lately, so that each minute does not
/// expand the calendar again. Not state: rebuilt on demand.
#[derive(Debug, Default, Clone)]
pub struct ShiftCache {
    from: i64,
    to: i64,
    instances: Vec<ShiftInstance>,
}

impl ShiftCache {
    fn ensure(&mut self, calendar: &ShiftCalendar, from: i64, to: i64) {
        if self.instances.is_empty() && self.from == self.to || from < self.from || to > self.to {
            self.from = from - DAY_MS;
            self.to = to + 7 * DAY_MS;
            self.instances = calendar.instances(self.from, self.to);
        }
    }

    fn at(&self, t: i64) -> Option<&ShiftInstance> {
        let upto = self.instances.partition_point(|i| i.start <= t);
        self.instances[..upto]
            .iter()
            .rev()
            .take(4)
            .find(|i| t < i.end)
    }
}

/// A `valid_from` as epoch ms; unset means valid from the beginning of time.
fn valid_from(v: Option<Ts>) -> i64 {
    v.map_or(i64::MIN, |t| t.0)
}

/// Every version of each entity, grouped by code into `Versions`, and the codes in the
/// order they first appear.
fn versions_by_code<E, T>(
    items: &[E],
    key: impl Fn(&E) -> (&String, Option<Ts>),
    settings: impl Fn(&E) -> T,
) -> (Vec<String>, HashMap<String, Versions<Arc<T>>>) {
    let mut order = Vec::new();
    let mut grouped: HashMap<String, Vec<(i64, Arc<T>)>> = HashMap::new();
    for item in items {
        let (code, from) = key(item);
        let entry = grouped.entry(code.clone()).or_insert_with(|| {
            order.push(code.clone());
            Vec::new()
        });
        entry.push((valid_from(from), Arc::new(settings(item))));
    }
    let versions = grouped
        .into_iter()
        .map(|(k, v)| (k, Versions::new(v)))
        .collect();
    (order, versions)
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl ContextIndex {
    /// Indexes a validated context.
    pub fn new(context: Context) -> Self {
        let (_, plants) = versions_by_code(
            &context.plants,
            |p| (&p.code, p.valid_from),
            |p| PlantSettings {
                code: p.code.as_str().into(),
                tz: p.timezone.parse().unwrap_or(Tz::UTC),
                currency: p.currency.as_deref().map(Into::into),
                day_start_hour: p.day_start_hour,
            },
        );
        let (_, skus) = versions_by_code(
            &context.skus,
            |s| (&s.code, s.valid_from),
            |s| SkuSettings {
                code: s.code.as_str().into(),
                ideal_unit_s: s.ideal_unit_s(),
                parts_per_cycle: s.parts_per_cycle,
                unit_value: s.unit_value,
                min_cycle_ms: s.min_cycle_s.map_or(0, ms),
                downtime_multiplier: s.downtime_multiplier,
                line_speed_target: s.line_speed_target,
            },
        );
        let (order, mut versions) = versions_by_code(
            &context.stations,
            |s| (&s.code, s.valid_from),
            |s| StationSettings {
                code: s.code.as_str().into(),
                plant: s.plant.as_str().into(),
                line: s.line.as_deref().map(Into::into),
                shift_pattern: s.shift_pattern.as_deref().map(Into::into),
                all_shift_time_planned: s.all_shift_time_planned,
                ideal_cycle_s: s.ideal_cycle_s,
                detection: s.downtime_detection,
                downtime_threshold_ms: ms(s.downtime_threshold_s),
                downtime_multiplier: s.downtime_multiplier,
                idle_cost_per_minute: s.idle_cost_per_minute,
                speed_to_production_ratio: s.speed_to_production_ratio,
                line_speed_target: s.line_speed_target,
                stale_after_ms: ms(s.stale_after_s),
            },
        );
        let mut stations = Vec::with_capacity(order.len());
        let mut by_code = StationCodes::default();
        for code in order {
            let settings = versions
                .remove(&code)
                .expect("every code in order has versions");
            let latest = settings.latest().clone();
            let calendar = latest.shift_pattern.as_ref().map(|pattern| {
                let tz = plants
                    .get(&*latest.plant)
                    .map_or(Tz::UTC, |p| p.latest().tz);
                Arc::new(ShiftCalendar::new(tz, pattern, &context.shifts))
            });
            let schedules = IntervalIndex::build(
                context
                    .schedule
                    .iter()
                    .filter(|x| x.station == code)
                    .map(|x| {
                        let info = ScheduleInfo {
                            sku: x.sku.as_deref().map(Into::into),
                            order_id: x.order_id.as_deref().map(Into::into),
                            ideal_cycle_s: x.ideal_cycle_s,
                        };
                        (
                            x.start.0,
                            x.start.0,
                            x.end.0,
                            valid_from(x.valid_from),
                            Arc::new(info),
                        )
                    })
                    .collect(),
            );
            let line = latest.line.as_deref();
            let stops = IntervalIndex::build(
                context
                    .planned_stops
                    .iter()
                    .filter(|x| {
                        x.station.as_deref() == Some(code.as_str())
                            || (x.line.is_some() && x.line.as_deref() == line)
                            || x.plant.as_deref() == Some(&*latest.plant)
                    })
                    .map(|x| {
                        let target = (
                            x.station.clone(),
                            x.line.clone(),
                            x.plant.clone(),
                            x.start.0,
                        );
                        (target, x.start.0, x.end.0, valid_from(x.valid_from), ())
                    })
                    .collect(),
            );
            let causes = IntervalIndex::build(
                context
                    .downtime_causes
                    .iter()
                    .filter(|x| x.station == code)
                    .map(|x| {
                        (
                            x.start.0,
                            x.start.0,
                            x.end.0,
                            valid_from(x.valid_from),
                            Arc::from(x.reason.as_str()),
                        )
                    })
                    .collect(),
            );
            by_code.insert(&code, stations.len() as StationId);
            stations.push(StationEntry {
                settings,
                schedules,
                stops,
                causes,
                calendar,
            });
        }
        ContextIndex {
            context,
            stations,
            by_code,
            plants,
            skus,
        }
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn station_count(&self) -> usize {
        self.stations.len()
    }

    pub fn station_id(&self, code: &str) -> Option<StationId> {
        self.by_code.get(code)
    }

    /// The station's latest settings (for labels that do not vary with time).
    pub fn station_latest(&self, id: StationId) -> &Arc<StationSettings> {
        self.stations[id as usize].settings.latest()
    }

    /// The parts of [from, to) with constant context, in order.
    pub fn plan(&self, id: StationId, from: i64, to: i64, cache: &mut ShiftCache) -> Plan {
        let entry = &self.stations[id as usize];
        let mut cuts: SmallVec<[i64; 8]> = SmallVec::new();
        let mut buf = Vec::new();
        entry.settings.boundaries_in(from, to, &mut buf);
        entry.schedules.boundaries_in(from, to, &mut buf);
        entry.stops.boundaries_in(from, to, &mut buf);
        entry.causes.boundaries_in(from, to, &mut buf);
        if let Some(cal) = &entry.calendar {
            cache.ensure(cal, from, to);
            let first = cache.instances.partition_point(|i| i.end <= from);
            for inst in cache.instances[first..].iter().take_while(|i| i.start < to) {
                inst.boundaries_in(from, to, &mut buf);
            }
        }
        cuts.push(from);
        buf.sort_unstable();
        buf.dedup();
        cuts.extend(buf);
        cuts.push(to);
        let mut plan = Plan::new();
        for w in cuts.windows(2) {
            plan.push(self.part_at(entry, w[0], w[1], cache));
        }
        plan
    }

    fn part_at(&self, entry: &StationEntry, start: i64, end: i64, cache: &ShiftCache) -> PlanPart {
        let t = start;
        let station = entry.settings.at(t).clone();
        let plant = self
            .plants
            .get(&*station.plant)
            .map(|v| v.at(t).clone())
            .expect("validated context: every station's plant exists");
        let (shift, working) = match &entry.calendar {
            None => (None, true),
            Some(_) => match cache.at(t) {
                Some(i) => (Some((i.name.clone(), i.shift_date)), i.working_at(t)),
                None => (None, false),
            },
        };
        let schedule = entry.schedules.at(t);
        let planned_stop = working && entry.stops.at(t).is_some();
        let sku = schedule
            .and_then(|s| s.sku.as_ref())
            .and_then(|code| self.skus.get(&**code))
            .map(|v| v.at(t).clone());
        let ideal_unit_s = schedule
            .and_then(|s| s.ideal_cycle_s)
            .or(sku.as_ref().and_then(|s| s.ideal_unit_s))
            .or(station.ideal_cycle_s);
        let planned =
            working && !planned_stop && (schedule.is_some() || station.all_shift_time_planned);
        PlanPart {
            start,
            end,
            shift,
            working,
            planned_stop,
            planned,
            order_id: schedule.and_then(|s| s.order_id.clone()),
            sku,
            ideal_unit_s,
            cause: entry.causes.at(t).cloned(),
            station,
            plant,
        }
    }
}

/// The part of `plan` containing `t` (the last part when `t` is at the end).
pub fn part_index_at(plan: &[PlanPart], t: i64) -> usize {
    plan.iter()
        .position(|p| t < p.end)
        .unwrap_or(plan.len() - 1)
}
