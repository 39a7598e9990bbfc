//! Where signal records come from. `files`: JSON Lines, long CSV and long Parquet for
//! replay; `context_topic`: the compacted context topic the live engine follows. (The
//! signals topic is read by the live driver's consumer group.)

pub mod context_topic;
pub mod files;
pub mod merge;

pub use stationflow_schemas::reader::Position;
