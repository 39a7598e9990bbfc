//! Drivers feed the operators and move their output to the sinks. `replay`: files in,
//! event time only. `live`: Kafka in, wall clock for quiet stations, checkpoints.

pub mod live;
pub mod replay;
