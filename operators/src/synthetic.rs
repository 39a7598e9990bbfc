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
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
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
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Monday 2026-03-02 06:00 UTC, when London's early shift starts: synthetic data
/// starts here.
pub const START_MS: i64 = 1_772_431_200_000;

fn station_code(i: usize) -> String {
    format!("ST-{i:05}")
}

/// A context with `stations` stations over two plants (London, Chicago), three shifts
/// with breaks, five SKUs; every tenth station continuous, every tenth detected by
/// production cycle.
pub fn plant(stations: usize) -> Context {
    let plants = [
        ("LDN", "Europe/London", "GBP"),
        ("CHI", "America/Chicago", "USD"),
    ];
    let mut ctx = Context::default();
    for (code, tz, currency) in plants {
        ctx.plants.push(Plant {
            code: code.into(),
            name: None,
            timezone: tz.into(),
            currency: Some(currency.into()),
            day_start_hour: 6,
            valid_from: None,
        });
        ctx.lines.push(Line {
            code: format!("{code}-L1"),
            plant: code.into(),
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
        let plant = plants[i % 2].0;
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
    let stations = stations.max(1);
    (0..records).map(move |n| {
        let i = n % stations;
        let round = (n / stations) as i64;
        let jitter = (i as i64 * 7_919) % interval_ms.max(1);
        let ts = START_MS + round * interval_ms + jitter;
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
