//! Where windows, downtime events and dead letters go. `parquet`: the hive-partitioned
//! datasets of SPEC §5 on any object store; `dead_letter`: `<out>/dead_letter.jsonl`;
//! `upload_queue`: the live engine's puts, waiting out store outages, in memory and then
//! in a `spool` folder.
//! (The Kafka sinks of the live engine sit beside them.)

pub mod arrow_rows;
pub mod dead_letter;
pub mod parquet;
pub mod spool;
pub mod upload_queue;
