//! Drivers feed the operators and move their output to the sinks. `replay`: files in,
//! event time only. (The live driver on Kafka sits beside it.)

pub mod replay;
