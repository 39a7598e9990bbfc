//! Content fingerprints of emitted rows: a window or event is emitted again (revision
//! + 1) only when its fingerprint changes. Revision and emission time are left out.

use std::hash::Hasher;

use rustc_hash::FxHasher;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};

struct Fp(FxHasher);

impl Fp {
    fn f(&mut self, v: f64) {
        self.0.write_u64(v.to_bits());
    }
    fn of(&mut self, v: Option<f64>) {
        match v {
            Some(x) => {
                self.0.write_u8(1);
                self.f(x)
            }
            None => self.0.write_u8(0),
        }
    }
    fn s(&mut self, v: Option<&str>) {
        match v {
            Some(x) => {
                self.0.write_u8(1);
                self.0.write(x.as_bytes());
                self.0.write_u8(0xff);
            }
            None => self.0.write_u8(0),
        }
    }
}

pub fn window(w: &StationWindow) -> u64 {
    let mut h = Fp(FxHasher::default());
    h.s(Some(&w.plant));
    h.s(w.line.as_deref());
    h.s(Some(&w.station));
    h.0.write_i64(w.window_start);
    h.0.write_i64(w.window_end);
    h.0.write_i32(w.production_date);
    h.s(w.shift.as_deref());
    h.0.write_i64(w.shift_date.map_or(i64::MIN, i64::from));
    h.s(w.sku.as_deref());
    h.s(w.order_id.as_deref());
    for v in [
        w.shift_s,
        w.planned_s,
        w.planned_stop_s,
        w.schedule_loss_s,
        w.productive_s,
        w.run_s,
        w.downtime_s,
        w.no_data_s,
        w.good_qty,
        w.reject_qty,
        w.total_qty,
        w.quality_loss_qty,
    ] {
        h.f(v);
    }
    h.s(w.downtime_reason.as_deref());
    for e in &w.error_codes {
        h.s(Some(e));
    }
    for v in [
        w.ideal_cycle_s,
        w.ideal_qty,
        w.target_qty,
        w.utilisation,
        w.availability,
        w.performance,
        w.quality,
        w.oee,
        w.availability_loss_s,
        w.performance_loss_s,
        w.quality_loss_s,
        w.availability_loss_qty,
        w.performance_loss_qty,
        w.availability_loss_cost,
        w.performance_loss_cost,
        w.quality_loss_cost,
        w.loss_cost,
        w.schedule_loss_cost,
        w.planned_stop_cost,
        w.cycle_time_avg,
        w.line_speed_avg,
        w.line_speed_target,
        w.energy_kwh,
        w.kwh_per_unit,
        w.rssi_avg,
    ] {
        h.of(v);
    }
    h.s(w.currency.as_deref());
    h.0.write_u8(w.is_alive as u8);
    h.0.write_i64(w.event_count);
    h.0.finish()
}

pub fn event(e: &DowntimeEvent) -> u64 {
    let mut h = Fp(FxHasher::default());
    h.s(Some(&e.station));
    h.0.write_i64(e.start);
    h.0.write_i64(e.end);
    h.f(e.downtime_s);
    h.s(Some(&e.reason));
    h.s(e.error_code.as_deref());
    h.0.finish()
}
