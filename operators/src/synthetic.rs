//! Synthetic plants and signals of the shapes real ones have — shifts with breaks,
//! discrete and continuous stations, stops with error codes, rejects — seeded and
//! deterministic, for benches, tests and `stationflow generate`.

use stationflow_schemas::context::{
    Context, DowntimeDetection, Line, Plant, ScheduleEntry, Shift, Sku, Station, Ts,
};
use stationflow_schemas::signal::{Reading, SignalRecord};

/// A small, fast, seedable generator (xorshift64*): reproducible data, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose numbers follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n) (near enough for test data), 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Monday 2026-03-02 06:00 UTC, when London's early shift starts: synthetic data
/// starts here.
pub const START_MS: i64 = 1_772_431_200_000;

pub(crate) fn station_code(i: usize) -> String {
    format!("ST-{i:05}")
}

/// A context with `stations` stations over two plants (London, Chicago), three shifts
/// with breaks, five SKUs; every tenth station continuous, every tenth detected by
/// production cycle.
pub fn plant(stations: usize) -> Context {
    plants(stations, 2)
}

/// Time zones and currencies of the plants after London and Chicago, in turn.
const MORE_PLANTS: [(&str, &str); 6] = [
    ("Europe/Berlin", "EUR"),
    ("Asia/Shanghai", "CNY"),
    ("America/Sao_Paulo", "BRL"),
    ("Asia/Kolkata", "INR"),
    ("Asia/Tokyo", "JPY"),
    ("America/New_York", "USD"),
];

/// `plant`'s context over `count` plants (at least one): London, Chicago, then `P003`
/// on in the time zones of `MORE_PLANTS` in turn; station `i` is in plant `i % count`,
/// so neighbouring codes lie in different plants, as a company's merged list has them.
pub fn plants(stations: usize, count: usize) -> Context {
    let count = count.max(1);
    let plants: Vec<(String, &str, &str)> = (0..count)
        .map(|k| match k {
            0 => ("LDN".to_string(), "Europe/London", "GBP"),
            1 => ("CHI".to_string(), "America/Chicago", "USD"),
            _ => {
                let (tz, currency) = MORE_PLANTS[(k - 2) % MORE_PLANTS.len()];
                (format!("P{:03}", k + 1), tz, currency)
            }
        })
        .collect();
    let mut ctx = Context::default();
    for (code, tz, currency) in &plants {
        ctx.plants.push(Plant {
            code: code.clone(),
            name: None,
            timezone: tz.to_string(),
            currency: Some(currency.to_string()),
            day_start_hour: 6,
            valid_from: None,
        });
        ctx.lines.push(Line {
            code: format!("{code}-L1"),
            plant: code.clone(),
            valid_from: None,
        });
    }
    for (name, start, end, breaks) in [
        (
            "Early",
            "06:00",
            "14:00",
            vec!["09:00-09:15", "11:30-12:00"],
        ),
        ("Late", "14:00", "22:00", vec!["17:00-17:15", "19:30-20:00"]),
        (
            "Night",
            "22:00",
            "06:00",
            vec!["01:00-01:30", "03:30-03:45"],
        ),
    ] {
        ctx.shifts.push(Shift {
            pattern: "3x8".into(),
            name: name.into(),
            days: ["Mon", "Tue", "Wed", "Thu", "Fri"]
                .map(String::from)
                .to_vec(),
            start: start.into(),
            end: end.into(),
            breaks: breaks.into_iter().map(String::from).collect(),
            valid_from: None,
        });
    }
    for (i, ideal) in [1.0, 1.5, 2.0, 3.0, 4.0].into_iter().enumerate() {
        ctx.skus.push(Sku {
            code: format!("SKU-{i}"),
            name: None,
            ideal_cycle_s: Some(ideal),
            ideal_units_per_min: None,
            ideal_units_per_hour: None,
            parts_per_cycle: 1.0,
            unit_value: Some(0.25 * (i + 1) as f64),
            min_cycle_s: Some(0.1),
            downtime_multiplier: None,
            line_speed_target: None,
            valid_from: None,
        });
    }
    for i in 0..stations {
        let plant = &plants[i % count].0;
        ctx.stations.push(Station {
            code: station_code(i),
            plant: plant.into(),
            line: Some(format!("{plant}-L1")),
            shift_pattern: Some("3x8".into()),
            all_shift_time_planned: i % 10 != 3,
            ideal_cycle_s: Some(2.0),
            downtime_detection: if i % 10 == 5 {
                DowntimeDetection::ProductionCycle
            } else {
                DowntimeDetection::Utilisation
            },
            downtime_threshold_s: 300.0,
            downtime_multiplier: 1.5,
            idle_cost_per_minute: Some(1.0),
            speed_to_production_ratio: (i % 10 == 7).then_some(1.0),
            line_speed_target: (i % 10 == 7).then_some(120.0),
            stale_after_s: 600.0,
            valid_from: None,
        });
        if i % 10 == 3 {
            for day in 0..7 {
                let start = START_MS + day * 86_400_000;
                ctx.schedule.push(ScheduleEntry {
                    station: station_code(i),
                    start: Ts(start),
                    end: Ts(start + 16 * 3_600_000),
                    sku: Some(format!("SKU-{}", day % 5)),
                    order_id: Some(format!("WO-{i}-{day}")),
                    planned_qty: None,
                    ideal_cycle_s: None,
                    valid_from: None,
                });
            }
        }
    }
    ctx
}

/// Per-station generator state: running, stopped with a fault, or idle.
struct Device {
    code: String,
    productive: bool,
    error: bool,
    good_total: f64,
    seq: u64,
}

/// `records` signal records spread evenly over `stations` stations, `interval_ms` apart
/// per station, in event-time order. Stations stop now and then (some with an error
/// code), make rejects, reset their counters; continuous ones report line speed.
pub fn signals(
    stations: usize,
    records: usize,
    interval_ms: i64,
    seed: u64,
) -> impl Iterator<Item = SignalRecord> {
    paced(stations, records, Pace::Every(interval_ms), seed)
}

/// How far apart a station's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Every station every this many ms (stations staggered within it).
    Every(i64),
    /// Each record of a station between this many and that many ms after its last, drawn
    /// anew each time (a discrete station completing a unit every 20–60 s).
    Between(i64, i64),
}

/// Which station reports next, and when: records in event-time order.
struct Clock {
    stations: usize,
    pace: Pace,
    rng: Rng,
    due: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>>,
}

impl Clock {
    fn new(stations: usize, pace: Pace, seed: u64) -> Clock {
        let mut rng = Rng::new(seed);
        let mut due = std::collections::BinaryHeap::new();
        if let Pace::Between(_, most) = pace {
            for i in 0..stations {
                let first = START_MS + rng.below(most.max(1) as u64) as i64;
                due.push(std::cmp::Reverse((first, i)));
            }
        }
        Clock {
            stations,
            pace,
            rng,
            due,
        }
    }

    /// The station and time of record `n`.
    fn next(&mut self, n: usize) -> (usize, i64) {
        match self.pace {
            Pace::Every(interval_ms) => {
                let i = n % self.stations;
                let round = (n / self.stations) as i64;
                let jitter = (i as i64 * 7_919) % interval_ms.max(1);
                (i, START_MS + round * interval_ms + jitter)
            }
            Pace::Between(least, most) => {
                let std::cmp::Reverse((ts, i)) = self.due.pop().expect("a station is due");
                let gap = least.max(1) + self.rng.below((most - least).max(0) as u64 + 1) as i64;
                self.due.push(std::cmp::Reverse((ts + gap, i)));
                (i, ts)
            }
        }
    }
}

/// `signals` at any `Pace`.
pub fn paced(
    stations: usize,
    records: usize,
    pace: Pace,
    seed: u64,
) -> impl Iterator<Item = SignalRecord> {
    let mut rng = Rng::new(seed);
    let mut devices: Vec<Device> = (0..stations)
        .map(|i| Device {
            code: station_code(i),
            productive: true,
            error: false,
            good_total: 0.0,
            seq: 0,
        })
        .collect();
    let mut clock = Clock::new(stations.max(1), pace, seed ^ 0xc10c);
    (0..records).map(move |n| {
        let (i, ts) = clock.next(n);
        let d = &mut devices[i];
        d.seq += 1;
        let mut readings = smallvec::SmallVec::new();
        let roll = rng.unit();
        if d.productive && roll < 0.01 {
            d.productive = false;
            d.error = rng.unit() < 0.5;
            readings.push(Reading::Productive(false));
            if d.error {
                readings.push(Reading::ErrorCode(Some(
                    format!("E{}", 10 + rng.below(8)).into(),
                )));
            }
        } else if !d.productive && roll < 0.08 {
            d.productive = true;
            readings.push(Reading::Productive(true));
            if d.error {
                d.error = false;
                readings.push(Reading::ErrorCode(None));
            }
        } else if d.productive {
            if i % 10 == 7 {
                readings.push(Reading::LineSpeed(100.0 + rng.below(40) as f64));
            } else if i % 10 == 1 {
                d.good_total = if rng.unit() < 0.001 {
                    0.0
                } else {
                    d.good_total + 1.0
                };
                readings.push(Reading::GoodTotal(d.good_total));
            } else if rng.unit() < 0.03 {
                readings.push(Reading::BadDelta(1.0));
            } else {
                readings.push(Reading::GoodDelta(1.0));
            }
        } else {
            readings.push(Reading::Rssi(-40.0 - rng.below(40) as f64));
        }
        SignalRecord {
            station: d.code.clone(),
            ts,
            seq: Some(d.seq),
            readings,
            unknown_keys: 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plants after London and Chicago get codes of their own and real time zones; a
    /// station's plant follows its number round the plants, and two plants give the
    /// context `plant` always gave.
    #[test]
    fn stations_are_spread_round_the_plants() {
        let ctx = plants(20, 9);
        let codes: Vec<&str> = ctx.plants.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes[..3], ["LDN", "CHI", "P003"]);
        assert_eq!(codes.len(), 9);
        assert!(ctx
            .plants
            .iter()
            .all(|p| p.timezone.parse::<chrono_tz::Tz>().is_ok()));
        assert_eq!(ctx.lines.len(), 9);
        for (i, station) in ctx.stations.iter().enumerate() {
            assert_eq!(station.plant, codes[i % 9]);
            assert_eq!(
                station.line.as_deref(),
                Some(&*format!("{}-L1", codes[i % 9]))
            );
        }
        assert_eq!(
            serde_json::to_string(&plant(50)).unwrap(),
            serde_json::to_string(&plants(50, 2)).unwrap()
        );
    }

    #[test]
    fn a_paced_station_reports_every_cycle_in_its_range_in_time_order() {
        let records: Vec<SignalRecord> =
            paced(50, 20_000, Pace::Between(20_000, 60_000), 3).collect();
        assert!(records.windows(2).all(|w| w[0].ts <= w[1].ts));
        let mut last: std::collections::HashMap<&str, i64> = Default::default();
        for r in &records {
            if let Some(before) = last.insert(&r.station, r.ts) {
                assert!(
                    (20_000..=60_000).contains(&(r.ts - before)),
                    "{}",
                    r.ts - before
                );
            }
        }
        // Every station reports, about once every 40 s: 400 records over ~4.4 hours.
        assert_eq!(last.len(), 50);
        let span_h = (records.last().unwrap().ts - START_MS) as f64 / 3.6e6;
        assert!((4.0..4.9).contains(&span_h), "{span_h} hours");
    }
}
