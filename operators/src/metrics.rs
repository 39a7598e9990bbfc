//! Layer two of a window: intersects a minute's context parts, state segments and the
//! detected downtime spans into time accounting, then computes quantities, OEE, losses
//! and costs (SPEC §4). Each context part is computed with its own ideal and summed;
//! a ratio whose denominator is zero or unknown, or whose quotient is beyond `f64`, is
//! `None`, never NaN or infinity.

use std::collections::BTreeMap;
use std::sync::Arc;

use smallvec::SmallVec;
use stationflow_schemas::window::StationWindow;

use crate::plan::PlanPart;
use crate::record::{ErrorCodes, ErrorId};
use crate::shift_calendar::production_date;
use crate::timeline::{Activity, MinuteFacts, Segment};

/// A span of detected downtime (before intersecting with planned time), with what an
/// event needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DowntimePiece {
    pub start: i64,
    pub end: i64,
    /// Inside planned time: counts as `downtime_s`.
    pub planned: bool,
    pub reason: String,
    pub error: Option<ErrorId>,
}

#[derive(Default, Clone)]
struct PartTotals {
    planned_ms: i64,
    downtime_ms: i64,
    shift_ms: i64,
    stop_ms: i64,
}

/// `num / den`, or `None` when that is not a finite number: a zero denominator, or a
/// quotient beyond `f64` (1e15 kWh over 1e-300 units).
fn ratio(num: f64, den: f64) -> Option<f64> {
    Some(num / den).filter(|q| den != 0.0 && q.is_finite())
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Sums `f` over the parts that matter; `None` as soon as one of them has no value.
fn sum_parts(relevant: &[bool], mut f: impl FnMut(usize) -> Option<f64>) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    for (i, r) in relevant.iter().enumerate() {
        if *r {
            total += f(i)?;
            any = true;
        }
    }
    any.then_some(total)
}

/// The reason of a downtime instant: operator's cause, else the error code, else no
/// data, else unassigned.
fn reason_of(part: &PlanPart, seg: &Segment, errors: &ErrorCodes) -> String {
    if let Some(cause) = &part.cause {
        return cause.to_string();
    }
    match (seg.error, seg.activity.has_data()) {
        (Some(e), _) => errors.name(e).to_string(),
        (None, false) => "no_data".into(),
        (None, true) => "unassigned".into(),
    }
}

/// Builds the window for one minute of the station `code`. `spans` are the detected
/// downtime spans (qualified stops and cycle gaps) overlapping it, sorted by start.
pub fn window(
    code: &Arc<str>,
    facts: &MinuteFacts,
    spans: &[(i64, i64)],
    errors: &ErrorCodes,
) -> (StationWindow, SmallVec<[DowntimePiece; 2]>) {
    let plan = &facts.plan;
    let start = facts.start;
    let end = plan.last().map_or(start, |p| p.end);
    let mut cuts: SmallVec<[i64; 12]> = SmallVec::new();
    cuts.extend(plan.iter().map(|p| p.start));
    cuts.extend(facts.segments.iter().map(|s| s.start));
    for (a, b) in spans {
        cuts.extend([*a, *b].into_iter().filter(|t| *t > start && *t < end));
    }
    cuts.push(end);
    cuts.sort_unstable();
    cuts.dedup();

    let mut totals: SmallVec<[PartTotals; 2]> =
        plan.iter().map(|_| PartTotals::default()).collect();
    let (mut productive_ms, mut no_data_ms) = (0i64, 0i64);
    let mut reasons: BTreeMap<String, i64> = BTreeMap::new();
    let mut error_ids: SmallVec<[ErrorId; 2]> = SmallVec::new();
    let mut pieces: SmallVec<[DowntimePiece; 2]> = SmallVec::new();
    let (mut pi, mut si) = (0usize, 0usize);
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = b - a;
        while plan[pi].end <= a {
            pi += 1;
        }
        while facts.segments[si].end <= a {
            si += 1;
        }
        let (part, seg) = (&plan[pi], &facts.segments[si]);
        let t = &mut totals[pi];
        if part.working {
            t.shift_ms += len;
        }
        if part.planned_stop {
            t.stop_ms += len;
        }
        if part.planned {
            t.planned_ms += len;
        }
        if seg.activity == Activity::Productive {
            productive_ms += len;
        }
        if let Some(e) = seg.error {
            if !error_ids.contains(&e) {
                error_ids.push(e);
            }
        }
        let no_data = !seg.activity.has_data();
        let detected = no_data || spans.iter().any(|(s, e)| a >= *s && a < *e);
        if !detected {
            continue;
        }
        let reason = reason_of(part, seg, errors);
        if part.planned {
            t.downtime_ms += len;
            if no_data {
                no_data_ms += len;
            }
            *reasons.entry(reason.clone()).or_default() += len;
        }
        if seg.activity == Activity::NeverReported {
            continue; // downtime in the window, but no event before the first record
        }
        match pieces.last_mut() {
            Some(p)
                if p.end == a
                    && p.planned == part.planned
                    && p.reason == reason
                    && p.error == seg.error =>
            {
                p.end = b
            }
            _ => pieces.push(DowntimePiece {
                start: a,
                end: b,
                planned: part.planned,
                reason,
                error: seg.error,
            }),
        }
    }

    let label = (0..plan.len())
        .max_by_key(|i| (plan[*i].len_ms(), std::cmp::Reverse(*i)))
        .unwrap_or(0);
    let lp = &plan[label];
    let continuous = !facts.has_counts;
    let good_p: SmallVec<[f64; 2]> = plan
        .iter()
        .zip(&facts.parts)
        .map(|(p, f)| match p.station.speed_to_production_ratio {
            Some(r) if continuous => r * f.speed_integral / 60_000.0,
            _ => f.good,
        })
        .collect();
    let bad_p: SmallVec<[f64; 2]> = facts.parts.iter().map(|f| f.bad).collect();
    let total_p = |i: usize| good_p[i] + bad_p[i];
    let run_ms = |i: usize| totals[i].planned_ms - totals[i].downtime_ms;
    // Parts whose ideal matters: planned time or output in them.
    let relevant: SmallVec<[bool; 2]> = (0..plan.len())
        .map(|i| totals[i].planned_ms > 0 || total_p(i) > 0.0)
        .collect();
    let ideal = |i: usize| plan[i].ideal_unit_s;

    let sum = |f: &dyn Fn(usize) -> f64| (0..plan.len()).map(f).sum::<f64>();
    let planned_s = seconds(totals.iter().map(|t| t.planned_ms).sum());
    let downtime_s = seconds(totals.iter().map(|t| t.downtime_ms).sum());
    let shift_s = seconds(totals.iter().map(|t| t.shift_ms).sum());
    let planned_stop_s = seconds(totals.iter().map(|t| t.stop_ms).sum());
    let run_s = planned_s - downtime_s;
    let good_qty = sum(&|i| good_p[i]);
    let reject_qty = sum(&|i| bad_p[i]);
    let total_qty = good_qty + reject_qty;

    let ideal_qty_p = |i: usize| ideal(i).map(|c| seconds(totals[i].planned_ms) / c);
    let target_qty_p = |i: usize| ideal(i).map(|c| seconds(run_ms(i)) / c);
    // Ideal columns need an ideal for every part with planned time or output.
    let ideal_known = plan.iter().any(|p| p.ideal_unit_s.is_some())
        && (0..plan.len()).all(|i| !relevant[i] || ideal(i).is_some());
    let over_ideal = |f: &dyn Fn(usize, f64) -> f64| {
        ideal_known.then(|| {
            (0..plan.len())
                .filter(|i| relevant[*i])
                .filter_map(|i| ideal(i).map(|c| f(i, c)))
                .sum::<f64>()
        })
    };
    let ideal_qty = over_ideal(&|i, c| seconds(totals[i].planned_ms) / c);
    let target_qty = over_ideal(&|i, c| seconds(run_ms(i)) / c);
    let avail_loss_qty = ideal_qty.zip(target_qty).map(|(a, b)| a - b);
    let perf_loss_qty = target_qty.map(|t| t - total_qty);
    let avail_loss_s = ideal_qty.map(|_| downtime_s);
    let perf_loss_s = over_ideal(&|i, c| (seconds(run_ms(i)) / c - total_p(i)) * c);
    let quality_loss_s = over_ideal(&|i, c| bad_p[i] * c);

    let value = |i: usize| plan[i].unit_value();
    let idle_cost = |i: usize| plan[i].station.idle_cost_per_minute;
    let avail_cost = sum_parts(&relevant, |i| match value(i) {
        Some(v) => ideal_qty_p(i)
            .zip(target_qty_p(i))
            .map(|(a, b)| (a - b) * v),
        None => idle_cost(i).map(|c| seconds(totals[i].downtime_ms) / 60.0 * c),
    });
    let perf_cost = sum_parts(&relevant, |i| {
        target_qty_p(i)
            .zip(value(i))
            .map(|(t, v)| (t - total_p(i)) * v)
    });
    let quality_cost = sum_parts(&relevant, |i| value(i).map(|v| bad_p[i] * v));
    let loss_cost = [avail_cost, perf_cost, quality_cost]
        .into_iter()
        .flatten()
        .reduce(|a, b| a + b);
    let idle_costed = |f: &dyn Fn(&PartTotals) -> i64| {
        (0..plan.len())
            .map(|i| idle_cost(i).map(|c| seconds(f(&totals[i])) / 60.0 * c))
            .sum::<Option<f64>>()
    };
    let schedule_loss_cost = idle_costed(&|t| t.shift_ms - t.planned_ms - t.stop_ms);
    let planned_stop_cost = idle_costed(&|t| t.stop_ms);

    let cycles: f64 = facts.parts.iter().map(|f| f.cycles).sum();
    let speed_integral: f64 = facts.parts.iter().map(|f| f.speed_integral).sum();
    let speed_ms: i64 = facts.parts.iter().map(|f| f.speed_ms).sum();
    let mut error_codes: Vec<String> = error_ids
        .iter()
        .map(|e| errors.name(*e).to_string())
        .collect();
    error_codes.sort();
    let downtime_reason = reasons
        .iter()
        .max_by_key(|(name, ms)| (**ms, std::cmp::Reverse(name.as_str())))
        .map(|(name, _)| name.clone());

    let w = StationWindow {
        // The context's strings, shared (a window row is written and dropped soon).
        plant: lp.plant.code.clone(),
        line: lp.station.line.clone(),
        station: code.clone(),
        window_start: start,
        window_end: end,
        production_date: production_date(lp.plant.tz, lp.plant.day_start_hour, start),
        shift: lp.shift.as_ref().map(|(n, _)| n.clone()),
        shift_date: lp.shift.as_ref().map(|(_, d)| *d),
        sku: lp.sku.as_ref().map(|s| s.code.clone()),
        order_id: lp.order_id.clone(),
        shift_s,
        planned_s,
        planned_stop_s,
        schedule_loss_s: shift_s - planned_s - planned_stop_s,
        productive_s: seconds(productive_ms),
        run_s,
        downtime_s,
        no_data_s: seconds(no_data_ms),
        downtime_reason,
        error_codes,
        good_qty,
        reject_qty,
        total_qty,
        ideal_cycle_s: lp
            .ideal_unit_s
            .or_else(|| plan.iter().find_map(|p| p.ideal_unit_s)),
        ideal_qty,
        target_qty,
        utilisation: ratio(seconds(productive_ms), shift_s),
        availability: ratio(run_s, planned_s),
        performance: target_qty.and_then(|t| ratio(total_qty, t)),
        quality: ratio(good_qty, total_qty),
        oee: ideal_qty.and_then(|q| ratio(good_qty, q)),
        availability_loss_s: avail_loss_s,
        performance_loss_s: perf_loss_s,
        quality_loss_s,
        availability_loss_qty: avail_loss_qty,
        performance_loss_qty: perf_loss_qty,
        quality_loss_qty: reject_qty,
        availability_loss_cost: avail_cost,
        performance_loss_cost: perf_cost,
        quality_loss_cost: quality_cost,
        loss_cost,
        schedule_loss_cost,
        planned_stop_cost,
        currency: lp.plant.currency.clone(),
        cycle_time_avg: ratio(run_s, cycles),
        line_speed_avg: ratio(speed_integral, speed_ms as f64),
        line_speed_target: lp.line_speed_target(),
        energy_kwh: facts.energy_kwh,
        kwh_per_unit: facts.energy_kwh.and_then(|e| ratio(e, good_qty)),
        rssi_avg: ratio(facts.rssi_integral, facts.rssi_ms as f64),
        is_alive: facts.event_count > 0,
        event_count: facts.event_count,
        revision: 0,
        emitted_at: 0,
    };
    (w, pieces)
}
