//! Shift calendar: turns a plant's shift pattern (local `HH:MM` starts, ends and breaks
//! on weekdays) into UTC shift instances, correct across midnight and both DST changes.
//! A local time that does not exist (clocks forward) maps to the first instant after the
//! gap; an ambiguous one (clocks back) to its first occurrence.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use stationflow_schemas::context::{parse_break, weekday, ClockTime, Shift};

/// Days from 1970-01-01 to a date (Arrow `Date32`).
pub fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date")).num_days() as i32
}

/// One occurrence of a shift, in UTC epoch ms.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftInstance {
    pub name: Arc<str>,
    /// Local date on which the shift started, as `Date32`.
    pub shift_date: i32,
    pub start: i64,
    pub end: i64,
    /// Breaks inside the shift, sorted.
    pub breaks: Vec<(i64, i64)>,
}

impl ShiftInstance {
    /// In shift time and not in a break.
    pub fn working_at(&self, t: i64) -> bool {
        t >= self.start && t < self.end && !self.breaks.iter().any(|(a, b)| t >= *a && t < *b)
    }

    /// Instants inside (from, to) where working time starts or stops.
    pub fn boundaries_in(&self, from: i64, to: i64, out: &mut Vec<i64>) {
        let mut push = |t: i64| {
            if t > from && t < to {
                out.push(t)
            }
        };
        push(self.start);
        push(self.end);
        for (a, b) in &self.breaks {
            push(*a);
            push(*b);
        }
    }
}

/// A shift definition parsed for fast expansion.
#[derive(Debug, Clone)]
struct ShiftDef {
    name: Arc<str>,
    days: [bool; 7],
    start: ClockTime,
    end: ClockTime,
    breaks: Vec<(ClockTime, ClockTime)>,
    valid_from: i64,
}

/// The shifts of one pattern in one plant's time zone.
#[derive(Debug, Clone)]
pub struct ShiftCalendar {
    tz: Tz,
    defs: Vec<ShiftDef>,
}

/// Converts a local wall time to UTC ms: gaps move forward, ambiguities take the first.
pub fn local_to_utc_ms(tz: Tz, local: NaiveDateTime) -> i64 {
    let mut probe = local;
    for _ in 0..=240 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.timestamp_millis();
        }
        probe += Duration::minutes(1);
    }
    // No zone has a gap longer than a few hours; treat the wall time as UTC.
    local.and_utc().timestamp_millis()
}

/// The local wall time of a UTC instant.
pub fn utc_ms_to_local(tz: Tz, ts_ms: i64) -> NaiveDateTime {
    let utc = chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default();
    utc.with_timezone(&tz).naive_local()
}

fn at_clock(date: NaiveDate, clock: ClockTime) -> NaiveDateTime {
    let midnight = date.and_time(NaiveTime::MIN);
    midnight + Duration::minutes(clock.0 as i64)
}

impl ShiftCalendar {
    /// Builds the calendar of `pattern` from every version of its shifts.
    pub fn new(tz: Tz, pattern: &str, shifts: &[Shift]) -> Self {
        let defs = shifts
            .iter()
            .filter(|s| s.pattern == pattern)
            .map(|s| {
                let mut days = [false; 7];
                for d in s.days.iter().filter_map(|d| weekday(d)) {
                    days[d.num_days_from_monday() as usize] = true;
                }
                ShiftDef {
                    name: s.name.as_str().into(),
                    days,
                    start: ClockTime::parse(&s.start).unwrap_or(ClockTime(0)),
                    end: ClockTime::parse(&s.end).unwrap_or(ClockTime(0)),
                    breaks: s.breaks.iter().filter_map(|b| parse_break(b)).collect(),
                    valid_from: s.valid_from.map(|t| t.0).unwrap_or(i64::MIN),
                }
            })
            .collect();
        ShiftCalendar { tz, defs }
    }

    /// Every shift instance overlapping [from, to), sorted by start. The version of a
    /// shift that applies to an instance is the one valid at the instance's start.
    pub fn instances(&self, from: i64, to: i64) -> Vec<ShiftInstance> {
        let first = utc_ms_to_local(self.tz, from).date() - Duration::days(2);
        let last = utc_ms_to_local(self.tz, to).date() + Duration::days(1);
        let mut out = Vec::new();
        let mut date = first;
        while date <= last {
            self.instances_on(date, &mut out);
            date += Duration::days(1);
        }
        out.retain(|i| i.end > from && i.start < to);
        out.sort_by_key(|i| (i.start, i.end));
        out
    }

    fn instances_on(&self, date: NaiveDate, out: &mut Vec<ShiftInstance>) {
        let dow = date.weekday().num_days_from_monday() as usize;
        let mut names: Vec<&Arc<str>> = self.defs.iter().map(|d| &d.name).collect();
        names.dedup();
        for name in names {
            let local_start = |d: &ShiftDef| at_clock(date, d.start);
            // The version valid at this occurrence's start wins.
            let def = self
                .defs
                .iter()
                .filter(|d| {
                    &d.name == name && d.valid_from <= local_to_utc_ms(self.tz, local_start(d))
                })
                .max_by_key(|d| d.valid_from);
            let Some(def) = def.filter(|d| d.days[dow]) else {
                continue;
            };
            let start_local = local_start(def);
            let mut end_local = at_clock(date, def.end);
            if def.end <= def.start {
                end_local += Duration::days(1);
            }
            let start = local_to_utc_ms(self.tz, start_local);
            let end = local_to_utc_ms(self.tz, end_local);
            let mut breaks: Vec<(i64, i64)> = def
                .breaks
                .iter()
                .map(|(a, b)| {
                    let mut a_local = at_clock(date, *a);
                    if a_local < start_local {
                        a_local += Duration::days(1);
                    }
                    let mut b_local =
                        a_local.date().and_time(NaiveTime::MIN) + Duration::minutes(b.0 as i64);
                    if b_local <= a_local {
                        b_local += Duration::days(1);
                    }
                    let a_utc = local_to_utc_ms(self.tz, a_local).clamp(start, end);
                    let b_utc = local_to_utc_ms(self.tz, b_local).clamp(start, end);
                    (a_utc, b_utc)
                })
                .filter(|(a, b)| b > a)
                .collect();
            breaks.sort();
            if end > start {
                out.push(ShiftInstance {
                    name: def.name.clone(),
                    shift_date: date32(date),
                    start,
                    end,
                    breaks,
                });
            }
        }
    }
}

/// `production_date` of an instant: the local date whose `day_start_hour` began the
/// production day containing it.
pub fn production_date(tz: Tz, day_start_hour: u32, ts_ms: i64) -> i32 {
    let local = utc_ms_to_local(tz, ts_ms) - Duration::hours(day_start_hour as i64);
    date32(local.date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stationflow_schemas::time::parse_rfc3339_ms;

    fn shift(name: &str, days: &[&str], start: &str, end: &str, breaks: &[&str]) -> Shift {
        Shift {
            pattern: "p".into(),
            name: name.into(),
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            breaks: breaks.iter().map(|d| d.to_string()).collect(),
            valid_from: None,
        }
    }

    fn ms(t: &str) -> i64 {
        parse_rfc3339_ms(t).unwrap()
    }

    #[test]
    fn night_shift_is_an_hour_shorter_when_clocks_go_forward_and_longer_when_back() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let cal = ShiftCalendar::new(
            tz,
            "p",
            &[shift("Night", &["Sat"], "22:00", "06:00", &["02:00-02:30"])],
        );
        // 2026-03-29 01:00 GMT clocks go forward; 2026-10-25 02:00 BST clocks go back.
        let spring = cal.instances(ms("2026-03-28T00:00:00Z"), ms("2026-03-30T00:00:00Z"));
        assert_eq!(spring.len(), 1);
        assert_eq!(spring[0].start, ms("2026-03-28T22:00:00Z"));
        assert_eq!(spring[0].end, ms("2026-03-29T05:00:00Z"));
        assert_eq!((spring[0].end - spring[0].start) / 3_600_000, 7);
        assert_eq!(
            spring[0].breaks,
            vec![(ms("2026-03-29T01:00:00Z"), ms("2026-03-29T01:30:00Z"))]
        );
        let autumn = cal.instances(ms("2026-10-24T00:00:00Z"), ms("2026-10-26T00:00:00Z"));
        assert_eq!(autumn[0].start, ms("2026-10-24T21:00:00Z"));
        assert_eq!(autumn[0].end, ms("2026-10-25T06:00:00Z"));
        assert_eq!((autumn[0].end - autumn[0].start) / 3_600_000, 9);
        assert_eq!(
            autumn[0].shift_date,
            date32(NaiveDate::from_ymd_opt(2026, 10, 24).unwrap())
        );
    }

    #[test]
    fn a_break_inside_a_gap_moves_to_the_first_valid_instant() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let cal = ShiftCalendar::new(
            tz,
            "p",
            &[shift("Night", &["Sat"], "22:00", "06:00", &["01:15-01:45"])],
        );
        let i = &cal.instances(ms("2026-03-28T00:00:00Z"), ms("2026-03-30T00:00:00Z"))[0];
        // 01:15–01:45 local does not exist that night: both ends land on 02:00 BST.
        assert!(i.breaks.is_empty());
        assert!(i.working_at(ms("2026-03-29T00:59:00Z")));
    }

    #[test]
    fn production_date_rolls_over_at_day_start_hour() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let d = |t| production_date(tz, 6, ms(t));
        let mon = date32(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(d("2026-03-02T05:59:00Z"), mon - 1);
        assert_eq!(d("2026-03-02T06:00:00Z"), mon);
        assert_eq!(d("2026-03-03T05:59:59Z"), mon);
    }
}
