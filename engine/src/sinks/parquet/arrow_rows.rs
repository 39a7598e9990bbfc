//! Station windows and downtime events as Arrow record batches, with exactly the
//! column names, order and types of SPEC §5 (timestamps in ms UTC, dates as Date32,
//! `error_codes` a list of strings). Kept in the engine so that Arrow never enters the
//! operators' dependency graph.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Array, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use stationflow_schemas::window::{DowntimeEvent, StationWindow, EVENT_COLUMNS, WINDOW_COLUMNS};

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn window_type(column: &str) -> (DataType, bool) {
    match column {
        "plant" | "station" => (DataType::Utf8, false),
        "line" | "shift" | "sku" | "order_id" | "downtime_reason" | "currency" => {
            (DataType::Utf8, true)
        }
        "window_start" | "window_end" | "emitted_at" => (timestamp(), false),
        "production_date" => (DataType::Date32, false),
        "shift_date" => (DataType::Date32, true),
        "error_codes" => (
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        "is_alive" => (DataType::Boolean, false),
        "event_count" => (DataType::Int64, false),
        "revision" => (DataType::Int32, false),
        "shift_s" | "planned_s" | "planned_stop_s" | "schedule_loss_s" | "productive_s"
        | "run_s" | "downtime_s" | "no_data_s" | "good_qty" | "reject_qty" | "total_qty"
        | "quality_loss_qty" => (DataType::Float64, false),
        _ => (DataType::Float64, true),
    }
}

/// The `station_windows` schema.
pub fn window_schema() -> SchemaRef {
    Arc::new(Schema::new(
        WINDOW_COLUMNS
            .iter()
            .map(|c| {
                let (t, nullable) = window_type(c);
                Field::new(*c, t, nullable)
            })
            .collect::<Vec<_>>(),
    ))
}

/// The `downtime_events` schema.
pub fn event_schema() -> SchemaRef {
    let field = |c: &str| match c {
        "start" | "end" | "emitted_at" => Field::new(c, timestamp(), false),
        "duration_s" | "downtime_s" => Field::new(c, DataType::Float64, false),
        "revision" => Field::new(c, DataType::Int32, false),
        "line" | "error_code" => Field::new(c, DataType::Utf8, true),
        _ => Field::new(c, DataType::Utf8, false),
    };
    Arc::new(Schema::new(
        EVENT_COLUMNS.iter().map(|c| field(c)).collect::<Vec<_>>(),
    ))
}

fn strings<'a>(values: impl ExactSizeIterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn floats(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(values.collect::<Float64Array>())
}

/// A column without nulls: no validity bitmap to build.
fn present_floats(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

fn times(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// One batch of windows, columns in `WINDOW_COLUMNS` order.
pub fn windows_batch(rows: &[StationWindow]) -> RecordBatch {
    let f = |get: fn(&StationWindow) -> f64| present_floats(rows.iter().map(get));
    let o = |get: fn(&StationWindow) -> Option<f64>| floats(rows.iter().map(get));
    let s = |get: fn(&StationWindow) -> Option<&str>| strings(rows.iter().map(get));
    let mut dates = Date32Builder::new();
    let mut shift_dates = Date32Builder::new();
    let mut codes = ListBuilder::new(StringBuilder::new());
    let mut alive = BooleanBuilder::new();
    let mut counts = Int64Builder::new();
    let mut revisions = Int32Builder::new();
    for w in rows {
        dates.append_value(w.production_date);
        shift_dates.append_option(w.shift_date);
        for c in &w.error_codes {
            codes.values().append_value(c);
        }
        codes.append(true);
        alive.append_value(w.is_alive);
        counts.append_value(w.event_count);
        revisions.append_value(w.revision);
    }
    let columns: Vec<ArrayRef> = vec![
        s(|w| Some(&w.plant)),
        s(|w| w.line.as_deref()),
        s(|w| Some(&w.station)),
        times(rows.iter().map(|w| w.window_start)),
        times(rows.iter().map(|w| w.window_end)),
        Arc::new(dates.finish()),
        s(|w| w.shift.as_deref()),
        Arc::new(shift_dates.finish()),
        s(|w| w.sku.as_deref()),
        s(|w| w.order_id.as_deref()),
        f(|w| w.shift_s),
        f(|w| w.planned_s),
        f(|w| w.planned_stop_s),
        f(|w| w.schedule_loss_s),
        f(|w| w.productive_s),
        f(|w| w.run_s),
        f(|w| w.downtime_s),
        f(|w| w.no_data_s),
        s(|w| w.downtime_reason.as_deref()),
        Arc::new(codes.finish()),
        f(|w| w.good_qty),
        f(|w| w.reject_qty),
        f(|w| w.total_qty),
        o(|w| w.ideal_cycle_s),
        o(|w| w.ideal_qty),
        o(|w| w.target_qty),
        o(|w| w.utilisation),
        o(|w| w.availability),
        o(|w| w.performance),
        o(|w| w.quality),
        o(|w| w.oee),
        o(|w| w.availability_loss_s),
        o(|w| w.performance_loss_s),
        o(|w| w.quality_loss_s),
        o(|w| w.availability_loss_qty),
        o(|w| w.performance_loss_qty),
        f(|w| w.quality_loss_qty),
        o(|w| w.availability_loss_cost),
        o(|w| w.performance_loss_cost),
        o(|w| w.quality_loss_cost),
        o(|w| w.loss_cost),
        o(|w| w.schedule_loss_cost),
        o(|w| w.planned_stop_cost),
        s(|w| w.currency.as_deref()),
        o(|w| w.cycle_time_avg),
        o(|w| w.line_speed_avg),
        o(|w| w.line_speed_target),
        o(|w| w.energy_kwh),
        o(|w| w.kwh_per_unit),
        o(|w| w.rssi_avg),
        Arc::new(alive.finish()),
        Arc::new(counts.finish()),
        Arc::new(revisions.finish()),
        times(rows.iter().map(|w| w.emitted_at)),
    ];
    RecordBatch::try_new(window_schema(), columns).expect("columns match the window schema")
}

/// One batch of downtime events, columns in `EVENT_COLUMNS` order.
pub fn events_batch(rows: &[DowntimeEvent]) -> RecordBatch {
    let mut revisions = Int32Builder::new();
    for e in rows {
        revisions.append_value(e.revision);
    }
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|e| Some(e.plant.as_str()))),
        strings(rows.iter().map(|e| e.line.as_deref())),
        strings(rows.iter().map(|e| Some(e.station.as_str()))),
        times(rows.iter().map(|e| e.start)),
        times(rows.iter().map(|e| e.end)),
        present_floats(rows.iter().map(|e| e.duration_s)),
        present_floats(rows.iter().map(|e| e.downtime_s)),
        strings(rows.iter().map(|e| Some(e.reason.as_str()))),
        strings(rows.iter().map(|e| e.error_code.as_deref())),
        Arc::new(revisions.finish()),
        times(rows.iter().map(|e| e.emitted_at)),
    ];
    RecordBatch::try_new(event_schema(), columns).expect("columns match the event schema")
}
