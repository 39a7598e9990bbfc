//! Crash points for the recovery tests: `STATIONFLOW_FAILPOINT=<name>:<n>` aborts the
//! process — no destructors, no flush, as `kill -9` would — the n-th time the named point
//! is reached. Unset (always, outside tests), a point costs one relaxed load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn armed() -> &'static Option<(String, u64)> {
    ARMED.get_or_init(|| {
        let spec = std::env::var("STATIONFLOW_FAILPOINT").ok()?;
        let (name, n) = spec.split_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    })
}

/// Marks a crash point.
pub fn point(name: &str) {
    if let Some((armed, n)) = armed() {
        if armed == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            eprintln!("stationflow: failpoint {name}:{n} reached, aborting");
            std::process::abort();
        }
    }
}
