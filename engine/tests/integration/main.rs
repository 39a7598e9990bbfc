//! Integration tests: the `stationflow` binary on real files, its output read back as
//! Parquet and through `stationflow query`. One test binary, a module per area.

mod api_keys;
mod audit_log;
mod broker;
mod common;
mod golden_through_binary;
mod hostile_input;
mod inputs_and_failures;
mod live_engine;
mod object_storage;
mod object_store_server;
mod order_independence;
mod other_engines;
mod publish_to_kafka;
mod row_scope;
mod sample_data;
mod serve_http;
mod serve_postgres;
