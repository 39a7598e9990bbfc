//! Where signal records and context come from, a folder per source, each with a config
//! type whose `build()` makes it:
//! - `files`: JSON Lines, long CSV and long Parquet files and folders, merged in event-time
//!   order, for `replay` and `publish`;
//! - `kafka`: the signals topic the live engine reads as a consumer group, and the
//!   compacted context topic it follows.

pub mod files;
pub mod kafka;

pub use stationflow_schemas::reader::Position;
