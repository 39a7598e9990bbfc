//! Drivers feed the operators and move their output to the sinks. `replay`: files in,
//! event time only. `live`: Kafka in, wall clock for quiet stations, checkpoints.

pub mod live;
pub mod replay;

/// The wall clock in epoch milliseconds: the idle rule's "now" live, and what `future_ts`
/// is judged against in both drivers.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
