//! The engine: drivers, sources, sinks, queries and the `stationflow` command. The data's
//! path: `sources` → `driver` (feeding `stationflow_operators`) → `sinks`; `query` reads
//! what the sinks wrote.

pub mod access;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod datasets;
pub mod driver;
pub mod error;
pub mod failpoint;
pub mod kafka;
pub mod metrics;
pub mod query;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod store;
