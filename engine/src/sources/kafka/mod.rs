//! The Kafka sources of the live engine: the signals topic, read as a consumer group
//! whose partitions are taken over at their checkpointed offsets (`signals`), and the
//! compacted context topic, read whole and then followed (`context_topic`).

pub mod context_topic;
pub mod signals;
