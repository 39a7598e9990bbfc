//! Where windows, downtime events, alerts and dead letters go, a folder per sink with a
//! config type whose `build()` makes it:
//! - `parquet`: the hive-partitioned datasets on any object store (`docs/spec.md` §5);
//! - `kafka`: the keyed producer of the live engine's output topics and `publish`;
//! - `dead_letter`: a replay's `<out>/dead_letter.jsonl`, spooled to disk first.
//!
//! `upload_queue` (with its `spool`) is the live engine's way to the store for files and
//! checkpoints alike, waiting out store outages.

pub mod dead_letter;
pub mod kafka;
pub mod parquet;
pub mod spool;
pub mod upload_queue;
