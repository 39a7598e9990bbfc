//! Plant context (SPEC §3): versioned master data — plants, lines, stations, SKUs,
//! shift patterns, production schedules, planned stops, reasons, operators' downtime
//! causes and alert rules. Loaded from TOML or JSON with the same model, validated once:
//! unknown keys and dangling references are errors that name the file, entity and key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::time::{format_ms, parse_rfc3339_ms};

/// An instant in context data: RFC 3339 with an offset (or integer epoch ms), held as
/// epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => parse_rfc3339_ms(&s).map(Ts).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not an RFC 3339 timestamp with an offset"
                ))
            }),
            Value::Number(n) if n.is_i64() => Ok(Ts(n.as_i64().unwrap_or_default())),
            other => Err(serde::de::Error::custom(format!(
                "{other} is not an RFC 3339 timestamp"
            ))),
        }
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(self.0))
    }
}

/// A local wall-clock time of day, in minutes after midnight (`24:00` allowed as an end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(pub u32);

impl ClockTime {
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(ClockTime(h * 60 + m))
    }
}

/// How a station's downtime is detected (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DowntimeDetection {
    #[default]
    Utilisation,
    ProductionCycle,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    Downtime,
    NonProduction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    pub code: String,
    pub name: Option<String>,
    /// IANA time zone, e.g. `Europe/London`.
    pub timezone: String,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// Local hour at which a production day begins.
    #[serde(default)]
    pub day_start_hour: u32,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub code: String,
    pub plant: String,
    pub valid_from: Option<Ts>,
}

fn default_threshold_s() -> f64 {
    300.0
}
fn default_multiplier() -> f64 {
    1.5
}
fn default_stale_after_s() -> f64 {
    600.0
}
fn default_parts_per_cycle() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub code: String,
    pub plant: String,
    pub line: Option<String>,
    pub shift_pattern: Option<String>,
    /// All in-shift time is planned production, even without a schedule.
    #[serde(default)]
    pub all_shift_time_planned: bool,
    /// Ideal seconds per unit, used when no schedule or SKU sets one.
    pub ideal_cycle_s: Option<f64>,
    #[serde(default)]
    pub downtime_detection: DowntimeDetection,
    #[serde(default = "default_threshold_s")]
    pub downtime_threshold_s: f64,
    #[serde(default = "default_multiplier")]
    pub downtime_multiplier: f64,
    pub idle_cost_per_minute: Option<f64>,
    pub speed_to_production_ratio: Option<f64>,
    pub line_speed_target: Option<f64>,
    #[serde(default = "default_stale_after_s")]
    pub stale_after_s: f64,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sku {
    pub code: String,
    pub name: Option<String>,
    pub ideal_cycle_s: Option<f64>,
    pub ideal_units_per_min: Option<f64>,
    pub ideal_units_per_hour: Option<f64>,
    #[serde(default = "default_parts_per_cycle")]
    pub parts_per_cycle: f64,
    pub unit_value: Option<f64>,
    pub min_cycle_s: Option<f64>,
    pub downtime_multiplier: Option<f64>,
    pub line_speed_target: Option<f64>,
    pub valid_from: Option<Ts>,
}

impl Sku {
    /// Ideal seconds per unit, from whichever of the three forms is set.
    pub fn ideal_unit_s(&self) -> Option<f64> {
        self.ideal_cycle_s
            .or(self.ideal_units_per_min.map(|u| 60.0 / u))
            .or(self.ideal_units_per_hour.map(|u| 3600.0 / u))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    pub pattern: String,
    pub name: String,
    /// `Mon` … `Sun`: the local days on which the shift starts.
    pub days: Vec<String>,
    /// Local `HH:MM`; `end` ≤ `start` runs past midnight.
    pub start: String,
    pub end: String,
    /// Local `HH:MM-HH:MM` spans that are not shift time.
    #[serde(default)]
    pub breaks: Vec<String>,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub station: String,
    pub start: Ts,
    pub end: Ts,
    pub sku: Option<String>,
    pub order_id: Option<String>,
    pub planned_qty: Option<f64>,
    /// Overrides the SKU's and the station's ideal seconds per unit.
    pub ideal_cycle_s: Option<f64>,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedStop {
    pub station: Option<String>,
    pub line: Option<String>,
    pub plant: Option<String>,
    pub start: Ts,
    pub end: Ts,
    pub reason: Option<String>,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: String,
    pub label: Option<String>,
    pub parent: Option<String>,
    pub kind: Option<ReasonKind>,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DowntimeCause {
    pub station: String,
    pub start: Ts,
    pub end: Ts,
    pub reason: String,
    pub valid_from: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub station: Option<String>,
    pub line: Option<String>,
    pub plant: Option<String>,
    pub metric: String,
    pub op: String,
    pub threshold: f64,
    #[serde(default = "default_for_minutes")]
    pub for_minutes: u32,
    pub valid_from: Option<Ts>,
}

fn default_for_minutes() -> u32 {
    1
}

/// The whole context: every version of every entity, as loaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default)]
    pub plants: Vec<Plant>,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub stations: Vec<Station>,
    #[serde(default)]
    pub skus: Vec<Sku>,
    #[serde(default)]
    pub shifts: Vec<Shift>,
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    #[serde(default)]
    pub planned_stops: Vec<PlannedStop>,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    #[serde(default)]
    pub downtime_causes: Vec<DowntimeCause>,
    #[serde(default)]
    pub alert_rules: Vec<AlertRule>,
}

/// A context that cannot be used, naming where: file, entity (kind and key), and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}: {entity}: {message}")]
pub struct ContextError {
    pub source_name: String,
    pub entity: String,
    pub message: String,
}

/// The entity kinds, as the context file's tables and the context topic's keys name them.
pub const KINDS: [&str; 10] = [
    "plants",
    "lines",
    "stations",
    "skus",
    "shifts",
    "schedule",
    "planned_stops",
    "reasons",
    "downtime_causes",
    "alert_rules",
];

impl Context {
    /// Parses and validates a TOML context; `source_name` (usually the path) names
    /// the file in errors.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, ContextError> {
        if let Ok(ctx) = toml::from_str::<Context>(text) {
            return ctx.validated(source_name);
        }
        let doc: toml::Table = toml::from_str(text).map_err(|e| ContextError {
            source_name: source_name.into(),
            entity: "file".into(),
            message: format!("not valid TOML: {e}"),
        })?;
        let json = serde_json::to_value(doc).map_err(|e| ContextError {
            source_name: source_name.into(),
            entity: "file".into(),
            message: e.to_string(),
        })?;
        Self::from_value(json, source_name)
    }

    /// Parses and validates a JSON context with the same keys as the TOML form.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, ContextError> {
        if let Ok(ctx) = serde_json::from_str::<Context>(text) {
            return ctx.validated(source_name);
        }
        let json: Value = serde_json::from_str(text).map_err(|e| ContextError {
            source_name: source_name.into(),
            entity: "file".into(),
            message: format!("not valid JSON: {e}"),
        })?;
        Self::from_value(json, source_name)
    }

    /// A context parsed straight into its entity lists, checked. Parsing a large file
    /// into a tree of values first took gigabytes at a million stations; only a file
    /// that does not parse so goes that way, for an error that names the entity.
    fn validated(self, source_name: &str) -> Result<Self, ContextError> {
        self.validate().map_err(|(entity, message)| ContextError {
            source_name: source_name.into(),
            entity,
            message,
        })?;
        Ok(self)
    }

    /// Picks the format from the name: `.json` is JSON, anything else TOML.
    pub fn from_str_named(text: &str, source_name: &str) -> Result<Self, ContextError> {
        if source_name.to_ascii_lowercase().ends_with(".json") {
            Self::from_json_str(text, source_name)
        } else {
            Self::from_toml_str(text, source_name)
        }
    }

    /// A stable hash of the whole context (FNV-1a of its JSON): equal contexts, equal
    /// fingerprints, in every build.
    pub fn fingerprint(&self) -> u64 {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Parses and validates a context already read into JSON (a table of entity lists).
    pub fn from_value(doc: Value, source_name: &str) -> Result<Self, ContextError> {
        let err = |entity: String, message: String| ContextError {
            source_name: source_name.into(),
            entity,
            message,
        };
        let Value::Object(top) = doc else {
            return Err(err(
                "file".into(),
                "the top level must be a table of entity lists".into(),
            ));
        };
        let mut ctx = Context::default();
        for (kind, items) in top {
            if !KINDS.contains(&kind.as_str()) {
                return Err(err(
                    kind.clone(),
                    format!(
                        "unknown entity kind `{kind}`, expected one of {}",
                        KINDS.join(", ")
                    ),
                ));
            }
            let Value::Array(items) = items else {
                return Err(err(
                    kind.clone(),
                    "must be a list of entities ([[...]] in TOML)".into(),
                ));
            };
            for (i, item) in items.into_iter().enumerate() {
                let label = entity_label(&kind, i, &item);
                ctx.push(&kind, item).map_err(|m| err(label, m))?;
            }
        }
        ctx.validated(source_name)
    }

    fn push(&mut self, kind: &str, item: Value) -> Result<(), String> {
        fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        match kind {
            "plants" => self.plants.push(de(item)?),
            "lines" => self.lines.push(de(item)?),
            "stations" => self.stations.push(de(item)?),
            "skus" => self.skus.push(de(item)?),
            "shifts" => self.shifts.push(de(item)?),
            "schedule" => self.schedule.push(de(item)?),
            "planned_stops" => self.planned_stops.push(de(item)?),
            "reasons" => self.reasons.push(de(item)?),
            "downtime_causes" => self.downtime_causes.push(de(item)?),
            _ => self.alert_rules.push(de(item)?),
        }
        Ok(())
    }

    /// Checks every rule that serde cannot: references, time zones, clock times,
    /// exactly one ideal per SKU, positive numbers, spans that end after they start, codes
    /// that `check_code` allows.
    /// Returns the entity label and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let plants: BTreeSet<&str> = self.plants.iter().map(|p| p.code.as_str()).collect();
        let lines: BTreeSet<&str> = self.lines.iter().map(|l| l.code.as_str()).collect();
        let stations: BTreeSet<&str> = self.stations.iter().map(|s| s.code.as_str()).collect();
        let skus: BTreeSet<&str> = self.skus.iter().map(|s| s.code.as_str()).collect();
        let patterns: BTreeSet<&str> = self.shifts.iter().map(|s| s.pattern.as_str()).collect();
        let refer = |entity: String, what: &str, code: &str, known: &BTreeSet<&str>| {
            if known.contains(code) {
                Ok(())
            } else {
                Err((entity, format!("{what} `{code}` is not defined")))
            }
        };
        let mut seen = BTreeMap::new();
        let mut unique =
            |entity: String, key: String, from: Option<Ts>| match seen.insert((key, from), ()) {
                None => Ok(()),
                Some(()) => Err((entity, "defined twice with the same valid_from".to_string())),
            };

        let codes = (self.plants.iter().map(|p| ("plants", &p.code)))
            .chain(self.lines.iter().map(|l| ("lines", &l.code)))
            .chain(self.stations.iter().map(|s| ("stations", &s.code)))
            .chain(self.skus.iter().map(|k| ("skus", &k.code)));
        for (kind, code) in codes {
            check_code(code).map_err(|why| (format!("{kind} `{}`", code.escape_debug()), why))?;
        }
        for p in &self.plants {
            let e = format!("plants `{}`", p.code);
            unique(e.clone(), format!("plant/{}", p.code), p.valid_from)?;
            if p.timezone.parse::<chrono_tz::Tz>().is_err() {
                return Err((
                    e,
                    format!("timezone `{}` is not an IANA time zone", p.timezone),
                ));
            }
            if let Some(c) = &p.currency {
                if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                    return Err((e, format!("currency `{c}` is not an ISO 4217 code")));
                }
            }
            if p.day_start_hour > 23 {
                return Err((e, "day_start_hour must be 0..=23".into()));
            }
        }
        for l in &self.lines {
            let e = format!("lines `{}`", l.code);
            unique(e.clone(), format!("line/{}", l.code), l.valid_from)?;
            refer(e, "plant", &l.plant, &plants)?;
        }
        for s in &self.stations {
            let e = format!("stations `{}`", s.code);
            unique(e.clone(), format!("station/{}", s.code), s.valid_from)?;
            refer(e.clone(), "plant", &s.plant, &plants)?;
            if let Some(l) = &s.line {
                refer(e.clone(), "line", l, &lines)?;
                if let Some(line) = self.lines.iter().find(|x| &x.code == l) {
                    if line.plant != s.plant {
                        return Err((
                            e,
                            format!(
                                "line `{l}` belongs to plant `{}`, not `{}`",
                                line.plant, s.plant
                            ),
                        ));
                    }
                }
            }
            if let Some(p) = &s.shift_pattern {
                refer(e.clone(), "shift pattern", p, &patterns)?;
            }
            positive(&e, "ideal_cycle_s", s.ideal_cycle_s)?;
            positive(&e, "downtime_threshold_s", Some(s.downtime_threshold_s))?;
            positive(&e, "downtime_multiplier", Some(s.downtime_multiplier))?;
            positive(&e, "stale_after_s", Some(s.stale_after_s))?;
            not_negative(&e, "idle_cost_per_minute", s.idle_cost_per_minute)?;
            not_negative(&e, "speed_to_production_ratio", s.speed_to_production_ratio)?;
        }
        for k in &self.skus {
            let e = format!("skus `{}`", k.code);
            unique(e.clone(), format!("sku/{}", k.code), k.valid_from)?;
            let set = [
                k.ideal_cycle_s,
                k.ideal_units_per_min,
                k.ideal_units_per_hour,
            ];
            if set.iter().filter(|v| v.is_some()).count() > 1 {
                return Err((
                    e,
                    "set only one of ideal_cycle_s, ideal_units_per_min, ideal_units_per_hour"
                        .into(),
                ));
            }
            for (name, v) in [
                ("ideal_cycle_s", k.ideal_cycle_s),
                ("ideal_units_per_min", k.ideal_units_per_min),
                ("ideal_units_per_hour", k.ideal_units_per_hour),
                ("parts_per_cycle", Some(k.parts_per_cycle)),
                ("downtime_multiplier", k.downtime_multiplier),
            ] {
                positive(&e, name, v)?;
            }
            not_negative(&e, "unit_value", k.unit_value)?;
            not_negative(&e, "min_cycle_s", k.min_cycle_s)?;
        }
        for s in &self.shifts {
            let e = format!("shifts `{}/{}`", s.pattern, s.name);
            unique(
                e.clone(),
                format!("shift/{}/{}", s.pattern, s.name),
                s.valid_from,
            )?;
            for d in &s.days {
                if weekday(d).is_none() {
                    return Err((
                        e,
                        format!("day `{d}` is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
                    ));
                }
            }
            for (key, t) in [("start", &s.start), ("end", &s.end)] {
                if ClockTime::parse(t).is_none() {
                    return Err((e, format!("{key} `{t}` is not a local time HH:MM")));
                }
            }
            for b in &s.breaks {
                if parse_break(b).is_none() {
                    return Err((e, format!("break `{b}` is not HH:MM-HH:MM")));
                }
            }
        }
        for x in &self.schedule {
            let e = format!("schedule `{}@{}`", x.station, format_ms(x.start.0));
            unique(
                e.clone(),
                format!("schedule/{}/{}", x.station, x.start.0),
                x.valid_from,
            )?;
            refer(e.clone(), "station", &x.station, &stations)?;
            if let Some(k) = &x.sku {
                refer(e.clone(), "sku", k, &skus)?;
            }
            span(&e, x.start, x.end)?;
            positive(&e, "ideal_cycle_s", x.ideal_cycle_s)?;
        }
        for x in &self.planned_stops {
            let target = [&x.station, &x.line, &x.plant];
            let e = format!(
                "planned_stops `{}@{}`",
                target.iter().find_map(|t| t.as_deref()).unwrap_or("?"),
                format_ms(x.start.0)
            );
            if target.iter().filter(|t| t.is_some()).count() != 1 {
                return Err((e, "set exactly one of station, line, plant".into()));
            }
            if let Some(s) = &x.station {
                refer(e.clone(), "station", s, &stations)?;
            }
            if let Some(l) = &x.line {
                refer(e.clone(), "line", l, &lines)?;
            }
            if let Some(p) = &x.plant {
                refer(e.clone(), "plant", p, &plants)?;
            }
            span(&e, x.start, x.end)?;
        }
        for r in &self.reasons {
            let e = format!("reasons `{}`", r.code);
            unique(e.clone(), format!("reason/{}", r.code), r.valid_from)?;
            if let Some(p) = &r.parent {
                // Parents are groups (e.g. MECH) and may be declared only as a parent.
                if p == &r.code {
                    return Err((e, "a reason cannot be its own parent".into()));
                }
            }
        }
        for c in &self.downtime_causes {
            let e = format!("downtime_causes `{}@{}`", c.station, format_ms(c.start.0));
            refer(e.clone(), "station", &c.station, &stations)?;
            span(&e, c.start, c.end)?;
        }
        for a in &self.alert_rules {
            let e = format!("alert_rules `{}`", a.name);
            if let Some(s) = &a.station {
                refer(e.clone(), "station", s, &stations)?;
            }
            if let Some(l) = &a.line {
                refer(e.clone(), "line", l, &lines)?;
            }
            if let Some(p) = &a.plant {
                refer(e.clone(), "plant", p, &plants)?;
            }
            if ![">", ">=", "<", "<=", "==", "!="].contains(&a.op.as_str()) {
                return Err((e, format!("op `{}` must be one of > >= < <= == !=", a.op)));
            }
        }
        Ok(())
    }
}

fn entity_label(kind: &str, index: usize, item: &Value) -> String {
    let key = ["code", "name", "station", "line", "plant"]
        .iter()
        .find_map(|k| item.get(*k).and_then(Value::as_str));
    match key {
        Some(k) => format!("{kind} `{k}` (entry {})", index + 1),
        None => format!("{kind} entry {}", index + 1),
    }
}

fn positive(entity: &str, key: &str, v: Option<f64>) -> Result<(), (String, String)> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err((
            entity.into(),
            format!("{key} must be a positive number, not {x}"),
        )),
        _ => Ok(()),
    }
}

fn not_negative(entity: &str, key: &str, v: Option<f64>) -> Result<(), (String, String)> {
    match v {
        Some(x) if !(x.is_finite() && x >= 0.0) => Err((
            entity.into(),
            format!("{key} must be zero or more, not {x}"),
        )),
        _ => Ok(()),
    }
}

fn span(entity: &str, start: Ts, end: Ts) -> Result<(), (String, String)> {
    if end.0 > start.0 {
        Ok(())
    } else {
        Err((entity.into(), "end must be after start".into()))
    }
}

/// `Mon` … `Sun` as a weekday.
pub fn weekday(day: &str) -> Option<chrono::Weekday> {
    Some(match day {
        "Mon" => chrono::Weekday::Mon,
        "Tue" => chrono::Weekday::Tue,
        "Wed" => chrono::Weekday::Wed,
        "Thu" => chrono::Weekday::Thu,
        "Fri" => chrono::Weekday::Fri,
        "Sat" => chrono::Weekday::Sat,
        "Sun" => chrono::Weekday::Sun,
        _ => return None,
    })
}

/// A break `HH:MM-HH:MM` as two clock times.
pub fn parse_break(text: &str) -> Option<(ClockTime, ClockTime)> {
    let (a, b) = text.split_once('-')?;
    let (a, b) = (ClockTime::parse(a)?, ClockTime::parse(b)?);
    (a != b).then_some((a, b))
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_ms(self.0))
    }
}

/// The longest code (plant, line, station, SKU) the context may define, in bytes.
pub const MAX_CODE_LEN: usize = 128;

/// Whether `code` may name a plant, line, station or SKU: 1 to `MAX_CODE_LEN` bytes, no
/// control characters, no white space at either end (records' codes are trimmed, so such
/// a station could never be matched). Anything else is allowed — spaces, `#`, `%`, `/`,
/// letters of any script: partition folders percent-encode what a path cannot hold, and
/// every command decodes it again.
pub fn check_code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        return Err("the code is empty".into());
    }
    if code.len() > MAX_CODE_LEN {
        return Err(format!(
            "the code is {} bytes, more than {MAX_CODE_LEN}",
            code.len()
        ));
    }
    if code.chars().any(char::is_control) {
        return Err("the code holds a control character".into());
    }
    if code.trim() != code {
        return Err("the code starts or ends with white space".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[plants]]
code = "LEEDS"
name = "Leeds"
timezone = "Europe/London"
currency = "GBP"
day_start_hour = 6

[[lines]]
code = "L1"
plant = "LEEDS"

[[stations]]
code = "PRESS-01"
plant = "LEEDS"
line = "L1"
shift_pattern = "5x8"
all_shift_time_planned = true
idle_cost_per_minute = 2.0

[[skus]]
code = "WIDGET"
ideal_cycle_s = 1.0
unit_value = 0.35

[[shifts]]
pattern = "5x8"
name = "Day"
days = ["Mon", "Tue"]
start = "06:00"
end = "14:00"
breaks = ["09:00-09:15"]

[[schedule]]
station = "PRESS-01"
sku = "WIDGET"
order_id = "WO-1001"
start = "2026-03-02T06:00:00Z"
end = "2026-03-02T14:00:00Z"
"#;

    #[test]
    fn loads_the_spec_sample_with_defaults() {
        let c = Context::from_toml_str(SAMPLE, "ctx.toml").unwrap();
        assert_eq!(c.stations[0].downtime_threshold_s, 300.0);
        assert_eq!(c.stations[0].stale_after_s, 600.0);
        assert_eq!(
            c.stations[0].downtime_detection,
            DowntimeDetection::Utilisation
        );
        assert_eq!(c.skus[0].parts_per_cycle, 1.0);
        assert_eq!(c.schedule[0].start.0, 1_772_431_200_000);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(Context::from_json_str(&json, "ctx.json").unwrap(), c);
    }

    #[test]
    fn unknown_key_names_file_entity_and_key() {
        let text = SAMPLE.replace("idle_cost_per_minute = 2.0", "idle_cost_per_min = 2.0");
        let e = Context::from_toml_str(&text, "plant.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("plant.toml: stations `PRESS-01`"), "{msg}");
        assert!(msg.contains("idle_cost_per_min"), "{msg}");
    }

    #[test]
    fn dangling_references_and_bad_values_are_errors() {
        let cases = [
            (
                SAMPLE.replace("shift_pattern = \"5x8\"", "shift_pattern = \"4x10\""),
                "shift pattern `4x10`",
            ),
            (
                SAMPLE.replace("sku = \"WIDGET\"", "sku = \"GADGET\""),
                "sku `GADGET`",
            ),
            (SAMPLE.replace("Europe/London", "Europe/Leeds"), "timezone"),
            (SAMPLE.replace("\"Tue\"", "\"Tues\""), "day `Tues`"),
            (SAMPLE.replace("09:00-09:15", "09:00-9:15"), "break"),
            (
                SAMPLE.replace(
                    "ideal_cycle_s = 1.0",
                    "ideal_cycle_s = 1.0\nideal_units_per_min = 60",
                ),
                "only one",
            ),
            (
                SAMPLE.replace("[[lines]]", "[[line]]"),
                "unknown entity kind `line`",
            ),
        ];
        for (text, needle) in cases {
            let msg = Context::from_toml_str(&text, "c.toml")
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }
}
