//! The context "as of" an instant (SPEC §3): for a station and a span of event time, the
//! parts with constant context — shift, break, planned stop, schedule, SKU, ideal cycle,
//! operator's downtime cause, and the station's and plant's settings of that moment.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono_tz::Tz;
use smallvec::SmallVec;
use stationflow_schemas::context::{Context, DowntimeDetection, Ts};

use crate::intervals::{IntervalIndex, Versions};
use crate::lent::{Lent, LentLists};
use crate::shift_calendar::{ShiftCalendar, ShiftInstance};
use crate::station_codes::StationCodes;

/// Index of a configured station, in context order.
pub type StationId = u32;

const DAY_MS: i64 = 86_400_000;

/// A station's settings valid over some span of event time.
#[derive(Debug, Clone, PartialEq)]
pub struct StationSettings {
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
    code: Arc<str>,
    /// Versions shared by every station configured alike (`Alike`).
    settings: Versions<Arc<StationSettings>>,
    schedules: IntervalIndex<Arc<ScheduleInfo>>,
    stops: IntervalIndex<()>,
    causes: IntervalIndex<Arc<str>>,
    calendar: Option<Arc<SharedCalendar>>,
}

/// A shift calendar shared by every station on the same pattern in the same time zone,
/// with the occurrences it expanded last: expanding is slow (time zone arithmetic for
/// each day), and stations move through time together, so one expansion serves them all.
#[derive(Debug)]
struct SharedCalendar {
    calendar: ShiftCalendar,
    expanded: Mutex<Option<Arc<Occurrences>>>,
}

/// The shift occurrences overlapping [from, to], sorted by start.
#[derive(Debug)]
struct Occurrences {
    from: i64,
    to: i64,
    instances: Vec<ShiftInstance>,
}

impl Occurrences {
    fn covers(&self, from: i64, to: i64) -> bool {
        self.from <= from && to <= self.to
    }
}

impl SharedCalendar {
    /// Occurrences covering [from, to]: the last expansion if it does, else a new one
    /// reaching a day back and a week ahead.
    fn covering(&self, from: i64, to: i64) -> Arc<Occurrences> {
        // A poisoned lock only means another thread panicked mid-expansion; the memo is
        // replaced whole, so whatever it holds is consistent.
        let mut memo = self.expanded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = memo.as_ref().filter(|o| o.covers(from, to)) {
            return o.clone();
        }
        let (from, to) = (from - DAY_MS, to + 7 * DAY_MS);
        let instances = self.calendar.instances(from, to);
        let fresh = Arc::new(Occurrences {
            from,
            to,
            instances,
        });
        *memo = Some(fresh.clone());
        fresh
    }
}

/// Read-only context, indexed for the lookups a station window needs. The context
/// itself is not kept: a million stations' lists, as loaded, took more memory than their
/// index.
pub struct ContextIndex {
    work: IndexWork,
    stations: Vec<StationEntry>,
    /// Per station: the `valid_from` of its first version (`i64::MIN` when unset).
    first_valid_from: Vec<i64>,
    by_code: StationCodes,
    plants: HashMap<String, Versions<Arc<PlantSettings>>>,
    skus: HashMap<String, Versions<Arc<SkuSettings>>>,
}

/// What indexing a context gathered and built, checked by a test at 100,000 stations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexWork {
    /// Schedule entries, planned stops and downtime causes gathered for the stations:
    /// each entry once per station it applies to.
    pub entries_gathered: usize,
    /// Shift calendars built: one per time zone and pattern, shared by stations.
    pub calendars: usize,
    /// Entries of the context's lists (plants, SKUs, stations, schedule, planned stops,
    /// downtime causes) read while indexing: a few passes over each list plus what was
    /// gathered, unless a step scans a list per station.
    pub entries_read: usize,
}

/// The shift occurrences a station looked up last, so that each minute does not ask
/// the calendar again. Not state: rebuilt on demand.
#[derive(Debug, Default, Clone)]
pub struct ShiftCache {
    occurrences: Option<Arc<Occurrences>>,
}

impl ShiftCache {
    fn ensure(&mut self, calendar: &SharedCalendar, from: i64, to: i64) -> &[ShiftInstance] {
        if !(self.occurrences.as_ref()).is_some_and(|o| o.covers(from, to)) {
            self.occurrences = Some(calendar.covering(from, to));
        }
        self.instances()
    }

    fn instances(&self) -> &[ShiftInstance] {
        self.occurrences.as_ref().map_or(&[], |o| &o.instances)
    }

    fn at(&self, t: i64) -> Option<&ShiftInstance> {
        let instances = self.instances();
        let upto = instances.partition_point(|i| i.start <= t);
        instances[..upto].iter().rev().take(4).find(|i| t < i.end)
    }
}

/// A `valid_from` as epoch ms; unset means valid from the beginning of time.
fn valid_from(v: Option<Ts>) -> i64 {
    v.map_or(i64::MIN, |t| t.0)
}

/// One `Arc` for each value that many stations share: the names of plants, lines and
/// shift patterns (a copy each took three allocations of every station's settings), and
/// the settings of stations configured alike (a station's code is not among them; a
/// million stations of a few kinds took 190 MB for copies).
struct Interned<T: ?Sized>(HashSet<Arc<T>>);

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Interned(HashSet::new())
    }
}

impl<T: ?Sized + Eq + std::hash::Hash> Interned<T> {
    /// The `Arc` of a value equal to `value`, made by `to_arc` the first time.
    fn get(&mut self, value: &T, to_arc: impl FnOnce(&T) -> Arc<T>) -> Arc<T> {
        if let Some(known) = self.0.get(value) {
            return known.clone();
        }
        let value = to_arc(value);
        self.0.insert(value.clone());
        value
    }
}

/// Equal as `PartialEq` has them. A NaN (a TOML context can give one as
/// `line_speed_target`) equals nothing: such settings are never shared, an `Arc` of
/// their own as before.
impl Eq for StationSettings {}

/// By value, numbers by their bits (0.0 and -0.0, equal, alike).
impl std::hash::Hash for StationSettings {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let bits = |v: Option<f64>| v.map(|v| if v == 0.0 { 0 } else { v.to_bits() });
        (
            self.plant.as_ref(),
            self.line.as_deref(),
            self.shift_pattern.as_deref(),
        )
            .hash(h);
        (self.all_shift_time_planned, self.detection).hash(h);
        (self.downtime_threshold_ms, self.stale_after_ms).hash(h);
        [
            bits(self.ideal_cycle_s),
            bits(Some(self.downtime_multiplier)),
            bits(self.idle_cost_per_minute),
            bits(self.speed_to_production_ratio),
            bits(self.line_speed_target),
        ]
        .hash(h);
    }
}

/// Every version of each entity, grouped by code into `Versions`, and the codes in the
/// order they first appear.
fn versions_by_code<'e, E: 'e, T>(
    items: impl IntoIterator<Item = &'e E>,
    key: impl Fn(&E) -> (&String, Option<Ts>),
    mut settings: impl FnMut(&E) -> Arc<T>,
) -> (Vec<String>, HashMap<String, Versions<Arc<T>>>) {
    let mut order = Vec::new();
    let mut grouped: HashMap<String, Vec<(i64, Arc<T>)>> = HashMap::new();
    for item in items {
        let (code, from) = key(item);
        let entry = grouped.entry(code.clone()).or_insert_with(|| {
            order.push(code.clone());
            Vec::new()
        });
        entry.push((valid_from(from), settings(item)));
    }
    let versions = grouped
        .into_iter()
        .map(|(k, v)| (k, Versions::new(v)))
        .collect();
    (order, versions)
}

/// The positions in `items` of each key `key_of` gives, in order.
fn positions_by<'a, T>(
    items: &'a Lent<'_, T>,
    key_of: impl Fn(&'a T) -> Option<&'a str>,
) -> HashMap<&'a str, Vec<usize>> {
    let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(key) = key_of(item) {
            by.entry(key).or_default().push(i);
        }
    }
    by
}

/// The items at `positions` (none when `None`), in order.
fn at<'a, T>(
    items: &'a Lent<'_, T>,
    positions: Option<&'a Vec<usize>>,
) -> impl Iterator<Item = &'a T> + 'a {
    positions.into_iter().flatten().map(move |&i| items.at(i))
}

/// Planned stops by the station, line or plant they name.
struct StopsOf<'a> {
    station: HashMap<&'a str, Vec<usize>>,
    line: HashMap<&'a str, Vec<usize>>,
    plant: HashMap<&'a str, Vec<usize>>,
}

impl StopsOf<'_> {
    /// The stops that apply to a station: named by it, its line or its plant; each once,
    /// in the context's order.
    fn of(&self, station: &str, line: Option<&str>, plant: &str) -> Vec<usize> {
        let mut found: Vec<usize> = [
            self.station.get(station),
            line.and_then(|l| self.line.get(l)),
            self.plant.get(plant),
        ]
        .into_iter()
        .flatten()
        .flatten()
        .copied()
        .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl ContextIndex {
    /// Indexes a validated context.
    pub fn new(mut context: Context) -> Self {
        let reads = Cell::new(0);
        let lists = LentLists::take(&mut context, &reads);
        let (_, plants) = versions_by_code(
            lists.plants.iter(),
            |p| (&p.code, p.valid_from),
            |p| {
                Arc::new(PlantSettings {
                    code: p.code.as_str().into(),
                    tz: p.timezone.parse().unwrap_or(Tz::UTC),
                    currency: p.currency.as_deref().map(Into::into),
                    day_start_hour: p.day_start_hour,
                })
            },
        );
        let (_, skus) = versions_by_code(
            lists.skus.iter(),
            |s| (&s.code, s.valid_from),
            |s| {
                Arc::new(SkuSettings {
                    code: s.code.as_str().into(),
                    ideal_unit_s: s.ideal_unit_s(),
                    parts_per_cycle: s.parts_per_cycle,
                    unit_value: s.unit_value,
                    min_cycle_ms: s.min_cycle_s.map_or(0, ms),
                    downtime_multiplier: s.downtime_multiplier,
                    line_speed_target: s.line_speed_target,
                })
            },
        );
        let mut names = Interned::<str>::default();
        let mut alike = Interned::<StationSettings>::default();
        let (order, mut versions) = versions_by_code(
            lists.stations.iter(),
            |s| (&s.code, s.valid_from),
            |s| {
                let mut name = |n: &str| names.get(n, |n| Arc::from(n));
                let settings = StationSettings {
                    plant: name(&s.plant),
                    line: s.line.as_deref().map(&mut name),
                    shift_pattern: s.shift_pattern.as_deref().map(&mut name),
                    all_shift_time_planned: s.all_shift_time_planned,
                    ideal_cycle_s: s.ideal_cycle_s,
                    detection: s.downtime_detection,
                    downtime_threshold_ms: ms(s.downtime_threshold_s),
                    downtime_multiplier: s.downtime_multiplier,
                    idle_cost_per_minute: s.idle_cost_per_minute,
                    speed_to_production_ratio: s.speed_to_production_ratio,
                    line_speed_target: s.line_speed_target,
                    stale_after_ms: ms(s.stale_after_s),
                };
                alike.get(&settings, |s| Arc::new(s.clone()))
            },
        );
        let mut stations = Vec::with_capacity(order.len());
        let mut by_code = StationCodes::default();
        let mut calendars: HashMap<(&str, Arc<str>), Arc<SharedCalendar>> = HashMap::new();
        // Each station's entries, found by one pass over each list rather than a pass per
        // station (which made indexing 100,000 stations take minutes).
        let schedule_of = positions_by(&lists.schedule, |x| Some(x.station.as_str()));
        let causes_of = positions_by(&lists.downtime_causes, |x| Some(x.station.as_str()));
        let stops_of = StopsOf {
            station: positions_by(&lists.planned_stops, |x| x.station.as_deref()),
            line: positions_by(&lists.planned_stops, |x| x.line.as_deref()),
            plant: positions_by(&lists.planned_stops, |x| x.plant.as_deref()),
        };
        let mut work = IndexWork::default();
        for code in order {
            let settings = versions
                .remove(&code)
                .expect("every code in order has versions");
            let latest = settings.latest().clone();
            let calendar = latest.shift_pattern.as_ref().map(|pattern| {
                let tz = plants
                    .get(&*latest.plant)
                    .map_or(Tz::UTC, |p| p.latest().tz);
                let key = (tz.name(), pattern.clone());
                calendars
                    .entry(key)
                    .or_insert_with(|| {
                        Arc::new(SharedCalendar {
                            calendar: ShiftCalendar::new(tz, pattern, &context.shifts),
                            expanded: Mutex::new(None),
                        })
                    })
                    .clone()
            });
            let schedules = IntervalIndex::build(
                at(&lists.schedule, schedule_of.get(code.as_str()))
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
                at(
                    &lists.planned_stops,
                    Some(&stops_of.of(&code, line, &latest.plant)),
                )
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
                at(&lists.downtime_causes, causes_of.get(code.as_str()))
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
            work.entries_gathered += schedules.len() + stops.len() + causes.len();
            by_code.insert(&code, stations.len() as StationId);
            stations.push(StationEntry {
                code: code.as_str().into(),
                settings,
                schedules,
                stops,
                causes,
                calendar,
            });
        }
        let mut first_valid_from = vec![i64::MAX; stations.len()];
        for s in lists.stations.iter() {
            if let Some(id) = by_code.get(&s.code) {
                let from = &mut first_valid_from[id as usize];
                *from = (*from).min(valid_from(s.valid_from));
            }
        }
        work.calendars = calendars.len();
        work.entries_read = reads.get();
        ContextIndex {
            work,
            stations,
            first_valid_from,
            by_code,
            plants,
            skus,
        }
    }

    /// What building this index took.
    pub fn work(&self) -> IndexWork {
        self.work
    }

    /// Stations in the context (each once, whatever its versions).
    pub fn station_count(&self) -> usize {
        self.stations.len()
    }

    /// The index of the station with `code`, if the context has it.
    pub fn station_id(&self, code: &str) -> Option<StationId> {
        self.by_code.get(code)
    }

    /// When the station's first version in the context begins (`valid_from`), or
    /// `i64::MIN` when it has none: records before it are not of this station.
    pub fn station_valid_from(&self, id: StationId) -> i64 {
        self.first_valid_from[id as usize]
    }

    /// The station's latest settings (for labels that do not vary with time).
    pub fn station_latest(&self, id: StationId) -> &Arc<StationSettings> {
        self.stations[id as usize].settings.latest()
    }

    /// The station's code.
    pub fn station_code(&self, id: StationId) -> &Arc<str> {
        &self.stations[id as usize].code
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
            let instances = cache.ensure(cal, from, to);
            let first = instances.partition_point(|i| i.end <= from);
            for inst in instances[first..].iter().take_while(|i| i.start < to) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn stations_on_one_pattern_and_zone_share_one_expansion_and_agree() {
        // Stations 0 and 2 are in one plant, 1 in the other (synthetic plants alternate).
        let ctx = ContextIndex::new(synthetic::plant(4));
        let t = synthetic::START_MS + 3 * DAY_MS + 7 * 3_600_000;
        let mut caches: Vec<ShiftCache> = (0..4).map(|_| ShiftCache::default()).collect();
        let plans: Vec<Plan> = (0..4u32)
            .map(|id| ctx.plan(id, t, t + 60_000, &mut caches[id as usize]))
            .collect();
        let occurrences = |i: usize| caches[i].occurrences.clone().expect("expanded");
        assert!(Arc::ptr_eq(&occurrences(0), &occurrences(2)));
        assert!(!Arc::ptr_eq(&occurrences(0), &occurrences(1)));

        // A station asking from far later gets a fresh expansion with the same answer
        // as a cache of its own would give.
        let later = t + 28 * DAY_MS;
        let shared = ctx.plan(2, later, later + 60_000, &mut caches[2]);
        let own = ctx.plan(2, later, later + 60_000, &mut ShiftCache::default());
        assert_eq!(format!("{shared:?}"), format!("{own:?}"));
        assert!(shared.iter().all(|p| p.shift.is_some()), "{shared:?}");
        let fresh = ctx.plan(0, t, t + 60_000, &mut ShiftCache::default());
        assert_eq!(format!("{:?}", plans[0]), format!("{fresh:?}"));
    }

    #[test]
    fn stations_configured_alike_share_their_settings_and_keep_their_codes() {
        // Stations 0 and 2 are in one plant, 1 and 3 in the other; 3 runs slower.
        let mut context = synthetic::plant(4);
        context.stations[3].ideal_cycle_s = Some(3.0);
        let ctx = ContextIndex::new(context);
        let settings = |id: StationId| ctx.station_latest(id).clone();
        assert!(Arc::ptr_eq(&settings(0), &settings(2)));
        assert!(!Arc::ptr_eq(&settings(0), &settings(1)));
        assert!(!Arc::ptr_eq(&settings(1), &settings(3)));
        assert_eq!(settings(3).ideal_cycle_s, Some(3.0));
        let codes: Vec<&str> = (0..4).map(|id| &**ctx.station_code(id)).collect();
        assert_eq!(
            codes,
            (0..4).map(synthetic::station_code).collect::<Vec<_>>()
        );
        for id in 0..4 {
            assert_eq!(ctx.station_id(codes[id as usize]), Some(id));
        }
    }

    #[test]
    fn a_station_gets_the_stops_naming_it_its_line_or_its_plant_each_once_in_order() {
        // (station, line, plant) each stop names.
        let list = vec![
            (Some("S1"), None, None),
            (None, Some("L1"), None),
            (None, None, Some("P1")),
            (Some("S1"), Some("L1"), Some("P1")),
            (Some("S2"), Some("L2"), Some("P2")),
            (None, Some("L1"), Some("P2")),
        ];
        let reads = Cell::new(0);
        let stops = Lent::new(list.clone(), &reads);
        let of = StopsOf {
            station: positions_by(&stops, |s| s.0),
            line: positions_by(&stops, |s| s.1),
            plant: positions_by(&stops, |s| s.2),
        };
        assert_eq!(of.of("S1", Some("L1"), "P1"), [0, 1, 2, 3, 5]);
        assert_eq!(of.of("S3", None, "P2"), [4, 5]);
        assert_eq!(of.of("S3", None, "P9"), Vec::<usize>::new());
        let items: Vec<_> = at(&stops, of.station.get("S1")).collect();
        assert_eq!(items, [&list[0], &list[3]]);
        assert_eq!(reads.get(), 3 * 6 + 2, "three passes and the two gathered");
    }
}
