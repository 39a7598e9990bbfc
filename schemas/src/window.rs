//! What the engine emits (SPEC §5): one `StationWindow` per station per UTC minute and
//! revision, and one `DowntimeEvent` per downtime span and revision. Field order is the
//! column order of the `station_windows` dataset.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::format_ms;

/// One station-minute. Seconds are `f64` seconds inside the 60 s window; ratios and
/// every column that needs an unset ideal or value are `None`, never NaN or infinity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StationWindow {
    pub plant: Arc<str>,
    pub line: Option<Arc<str>>,
    pub station: Arc<str>,
    /// Epoch ms UTC.
    pub window_start: i64,
    pub window_end: i64,
    /// Days since 1970-01-01 (Arrow `Date32`).
    pub production_date: i32,
    pub shift: Option<Arc<str>>,
    pub shift_date: Option<i32>,
    pub sku: Option<Arc<str>>,
    pub order_id: Option<Arc<str>>,
    pub shift_s: f64,
    pub planned_s: f64,
    pub planned_stop_s: f64,
    pub schedule_loss_s: f64,
    pub productive_s: f64,
    pub run_s: f64,
    pub downtime_s: f64,
    pub no_data_s: f64,
    pub downtime_reason: Option<String>,
    pub error_codes: Vec<String>,
    pub good_qty: f64,
    pub reject_qty: f64,
    pub total_qty: f64,
    pub ideal_cycle_s: Option<f64>,
    pub ideal_qty: Option<f64>,
    pub target_qty: Option<f64>,
    pub utilisation: Option<f64>,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    pub availability_loss_s: Option<f64>,
    pub performance_loss_s: Option<f64>,
    pub quality_loss_s: Option<f64>,
    pub availability_loss_qty: Option<f64>,
    pub performance_loss_qty: Option<f64>,
    pub quality_loss_qty: f64,
    pub availability_loss_cost: Option<f64>,
    pub performance_loss_cost: Option<f64>,
    pub quality_loss_cost: Option<f64>,
    pub loss_cost: Option<f64>,
    pub schedule_loss_cost: Option<f64>,
    pub planned_stop_cost: Option<f64>,
    pub currency: Option<Arc<str>>,
    pub cycle_time_avg: Option<f64>,
    pub line_speed_avg: Option<f64>,
    pub line_speed_target: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub kwh_per_unit: Option<f64>,
    pub rssi_avg: Option<f64>,
    pub is_alive: bool,
    pub event_count: i64,
    pub revision: i32,
    /// When the driver emitted this revision (wall clock live, event time in replay).
    pub emitted_at: i64,
}

/// The dataset's column names, in order.
pub const WINDOW_COLUMNS: [&str; 54] = [
    "plant",
    "line",
    "station",
    "window_start",
    "window_end",
    "production_date",
    "shift",
    "shift_date",
    "sku",
    "order_id",
    "shift_s",
    "planned_s",
    "planned_stop_s",
    "schedule_loss_s",
    "productive_s",
    "run_s",
    "downtime_s",
    "no_data_s",
    "downtime_reason",
    "error_codes",
    "good_qty",
    "reject_qty",
    "total_qty",
    "ideal_cycle_s",
    "ideal_qty",
    "target_qty",
    "utilisation",
    "availability",
    "performance",
    "quality",
    "oee",
    "availability_loss_s",
    "performance_loss_s",
    "quality_loss_s",
    "availability_loss_qty",
    "performance_loss_qty",
    "quality_loss_qty",
    "availability_loss_cost",
    "performance_loss_cost",
    "quality_loss_cost",
    "loss_cost",
    "schedule_loss_cost",
    "planned_stop_cost",
    "currency",
    "cycle_time_avg",
    "line_speed_avg",
    "line_speed_target",
    "energy_kwh",
    "kwh_per_unit",
    "rssi_avg",
    "is_alive",
    "event_count",
    "revision",
    "emitted_at",
];

/// A cell as text for CSV and tables: numbers to 6 decimals without trailing zeros,
/// times in RFC 3339, dates as `YYYY-MM-DD`, lists joined with `|`, null as empty.
pub fn format_f64(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn opt_f64(v: Option<f64>) -> String {
    v.map(format_f64).unwrap_or_default()
}

fn opt_str<S: AsRef<str>>(v: &Option<S>) -> String {
    v.as_ref()
        .map(|s| s.as_ref().to_owned())
        .unwrap_or_default()
}

/// `Date32` days as `YYYY-MM-DD`.
pub fn format_date32(days: i32) -> String {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days as i64)))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

impl StationWindow {
    /// The numeric columns every window has, in `WINDOW_COLUMNS` order.
    pub fn amounts(&self) -> [f64; 12] {
        [
            self.shift_s,
            self.planned_s,
            self.planned_stop_s,
            self.schedule_loss_s,
            self.productive_s,
            self.run_s,
            self.downtime_s,
            self.no_data_s,
            self.good_qty,
            self.reject_qty,
            self.total_qty,
            self.quality_loss_qty,
        ]
    }

    /// The numeric columns a window may lack, in `WINDOW_COLUMNS` order.
    pub fn optional_amounts(&self) -> [Option<f64>; 25] {
        [
            self.ideal_cycle_s,
            self.ideal_qty,
            self.target_qty,
            self.utilisation,
            self.availability,
            self.performance,
            self.quality,
            self.oee,
            self.availability_loss_s,
            self.performance_loss_s,
            self.quality_loss_s,
            self.availability_loss_qty,
            self.performance_loss_qty,
            self.availability_loss_cost,
            self.performance_loss_cost,
            self.quality_loss_cost,
            self.loss_cost,
            self.schedule_loss_cost,
            self.planned_stop_cost,
            self.cycle_time_avg,
            self.line_speed_avg,
            self.line_speed_target,
            self.energy_kwh,
            self.kwh_per_unit,
            self.rssi_avg,
        ]
    }

    /// A numeric column by name, for alert rules: `None` for a name that is not a
    /// numeric column, `Some(None)` where the window has no value (e.g. OEE without
    /// planned time).
    pub fn metric(&self, name: &str) -> Option<Option<f64>> {
        match name {
            "shift_s" => Some(Some(self.shift_s)),
            "planned_s" => Some(Some(self.planned_s)),
            "planned_stop_s" => Some(Some(self.planned_stop_s)),
            "schedule_loss_s" => Some(Some(self.schedule_loss_s)),
            "productive_s" => Some(Some(self.productive_s)),
            "run_s" => Some(Some(self.run_s)),
            "downtime_s" => Some(Some(self.downtime_s)),
            "no_data_s" => Some(Some(self.no_data_s)),
            "good_qty" => Some(Some(self.good_qty)),
            "reject_qty" => Some(Some(self.reject_qty)),
            "total_qty" => Some(Some(self.total_qty)),
            "quality_loss_qty" => Some(Some(self.quality_loss_qty)),
            "ideal_cycle_s" => Some(self.ideal_cycle_s),
            "ideal_qty" => Some(self.ideal_qty),
            "target_qty" => Some(self.target_qty),
            "utilisation" => Some(self.utilisation),
            "availability" => Some(self.availability),
            "performance" => Some(self.performance),
            "quality" => Some(self.quality),
            "oee" => Some(self.oee),
            "availability_loss_s" => Some(self.availability_loss_s),
            "performance_loss_s" => Some(self.performance_loss_s),
            "quality_loss_s" => Some(self.quality_loss_s),
            "availability_loss_qty" => Some(self.availability_loss_qty),
            "performance_loss_qty" => Some(self.performance_loss_qty),
            "availability_loss_cost" => Some(self.availability_loss_cost),
            "performance_loss_cost" => Some(self.performance_loss_cost),
            "quality_loss_cost" => Some(self.quality_loss_cost),
            "loss_cost" => Some(self.loss_cost),
            "schedule_loss_cost" => Some(self.schedule_loss_cost),
            "planned_stop_cost" => Some(self.planned_stop_cost),
            "cycle_time_avg" => Some(self.cycle_time_avg),
            "line_speed_avg" => Some(self.line_speed_avg),
            "line_speed_target" => Some(self.line_speed_target),
            "energy_kwh" => Some(self.energy_kwh),
            "kwh_per_unit" => Some(self.kwh_per_unit),
            "rssi_avg" => Some(self.rssi_avg),
            "event_count" => Some(Some(self.event_count as f64)),
            _ => None,
        }
    }

    /// Every column as text, in `WINDOW_COLUMNS` order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.plant.to_string(),
            opt_str(&self.line),
            self.station.to_string(),
            format_ms(self.window_start),
            format_ms(self.window_end),
            format_date32(self.production_date),
            opt_str(&self.shift),
            self.shift_date.map(format_date32).unwrap_or_default(),
            opt_str(&self.sku),
            opt_str(&self.order_id),
            format_f64(self.shift_s),
            format_f64(self.planned_s),
            format_f64(self.planned_stop_s),
            format_f64(self.schedule_loss_s),
            format_f64(self.productive_s),
            format_f64(self.run_s),
            format_f64(self.downtime_s),
            format_f64(self.no_data_s),
            opt_str(&self.downtime_reason),
            self.error_codes.join("|"),
            format_f64(self.good_qty),
            format_f64(self.reject_qty),
            format_f64(self.total_qty),
            opt_f64(self.ideal_cycle_s),
            opt_f64(self.ideal_qty),
            opt_f64(self.target_qty),
            opt_f64(self.utilisation),
            opt_f64(self.availability),
            opt_f64(self.performance),
            opt_f64(self.quality),
            opt_f64(self.oee),
            opt_f64(self.availability_loss_s),
            opt_f64(self.performance_loss_s),
            opt_f64(self.quality_loss_s),
            opt_f64(self.availability_loss_qty),
            opt_f64(self.performance_loss_qty),
            format_f64(self.quality_loss_qty),
            opt_f64(self.availability_loss_cost),
            opt_f64(self.performance_loss_cost),
            opt_f64(self.quality_loss_cost),
            opt_f64(self.loss_cost),
            opt_f64(self.schedule_loss_cost),
            opt_f64(self.planned_stop_cost),
            opt_str(&self.currency),
            opt_f64(self.cycle_time_avg),
            opt_f64(self.line_speed_avg),
            opt_f64(self.line_speed_target),
            opt_f64(self.energy_kwh),
            opt_f64(self.kwh_per_unit),
            opt_f64(self.rssi_avg),
            self.is_alive.to_string(),
            self.event_count.to_string(),
            self.revision.to_string(),
            format_ms(self.emitted_at),
        ]
    }
}

/// One span of downtime for Pareto and root-cause analysis: a stop or cycle gap that
/// counted as downtime, or a span without data, keyed by `(station, start)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DowntimeEvent {
    pub plant: String,
    pub line: Option<String>,
    pub station: String,
    /// Epoch ms UTC.
    pub start: i64,
    pub end: i64,
    /// `end - start` in seconds.
    pub duration_s: f64,
    /// Of that, seconds inside planned production time (what `downtime_s` counts).
    pub downtime_s: f64,
    /// The reason with the most downtime seconds in the span; `retracted` when later
    /// data showed the span was not downtime after all.
    pub reason: String,
    /// The first error code active in the span.
    pub error_code: Option<String>,
    pub revision: i32,
    pub emitted_at: i64,
}

pub const EVENT_COLUMNS: [&str; 11] = [
    "plant",
    "line",
    "station",
    "start",
    "end",
    "duration_s",
    "downtime_s",
    "reason",
    "error_code",
    "revision",
    "emitted_at",
];

impl DowntimeEvent {
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.plant.clone(),
            opt_str(&self.line),
            self.station.clone(),
            format_ms(self.start),
            format_ms(self.end),
            format_f64(self.duration_s),
            format_f64(self.downtime_s),
            self.reason.clone(),
            opt_str(&self.error_code),
            self.revision.to_string(),
            format_ms(self.emitted_at),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_format_stably() {
        assert_eq!(format_f64(1.0), "1");
        assert_eq!(format_f64(0.1 + 0.2), "0.3");
        assert_eq!(format_f64(-0.0000001), "0");
        assert_eq!(format_f64(2.5), "2.5");
        assert_eq!(format_date32(0), "1970-01-01");
        assert_eq!(format_date32(20514), "2026-03-02");
    }
}
