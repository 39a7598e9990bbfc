//! Types shared by every part of stationflow: the signal records a DAU publishes
//! (`signal`), the plant's versioned master data (`context`), and the station windows
//! and downtime events the engine emits (`window`). No I/O beyond parsing bytes.

pub mod alert;
pub mod context;
pub mod context_topic;
pub mod dead_letter;
pub mod reader;
pub mod signal;
pub mod time;
pub mod window;

pub use context::{Context, ContextError};
pub use dead_letter::RejectReason;
pub use signal::{decode_json, DecodeOutcome, Reading, SignalRecord};
pub use window::{DowntimeEvent, StationWindow};
