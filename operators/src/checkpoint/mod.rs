//! What a flow's state is when it is saved: tables of plain data with a format number,
//! separate from the structs the flow runs on, so that those can change for speed
//! without changing what checkpoints hold. Each in-memory struct saves itself into its
//! table and loads itself from it; a checkpoint is checked whole before it is loaded.
//!
//! `format2` is written today. `format1` (the in-memory structs as serde wrote them,
//! until format 2) is read and migrated to format 2. The file that holds the tables
//! carries the number (the engine's checkpoint), bumped with any of them, and refuses a
//! format this version does not know.

pub mod format1;
pub(crate) mod format2;

pub use format2::{AlertSnapshot, FlowSnapshot};

use crate::flow::{Counters, FlowConfig};
use crate::record::ErrorCodes;
use crate::station::StationOp;

/// Why a saved state cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A station's state is not whole: a damaged checkpoint.
    #[error("station `{station}`: {fault}")]
    Station {
        /// The station's code.
        station: String,
        /// What is wrong, and where.
        fault: String,
    },
    /// The flow's own tables are not whole.
    #[error("{0}")]
    Flow(String),
}

impl FlowSnapshot {
    /// Whether the state is whole (one read from a checkpoint may be damaged while its
    /// JSON is valid): every station's records decode, with known error codes, and its
    /// states lie where they must. A flow restored from a snapshot that passes does not
    /// fail on it later.
    pub fn check(&self) -> Result<(), RestoreError> {
        ErrorCodes::check_saved(&self.error_codes).map_err(RestoreError::Flow)?;
        for station in &self.stations {
            StationOp::check_saved(station, self.error_codes.len()).map_err(|fault| {
                RestoreError::Station {
                    station: station.code.clone(),
                    fault,
                }
            })?;
        }
        Ok(())
    }

    /// The settings the flow ran with.
    pub fn config(&self) -> FlowConfig {
        let c = &self.config;
        FlowConfig {
            out_of_orderness_ms: c.out_of_orderness_ms,
            allowed_lateness_ms: c.allowed_lateness_ms,
            idle_timeout_ms: c.idle_timeout_ms,
            max_clock_skew_ms: c.max_clock_skew_ms,
            earliest_ts_ms: c.earliest_ts_ms,
            max_refresh_ms: c.max_refresh_ms,
        }
    }

    /// The flow's totals when saved.
    pub fn counters(&self) -> Counters {
        let c = &self.counters;
        Counters {
            records_in: c.records_in,
            applied: c.applied,
            duplicates: c.duplicates,
            rejected: c.rejected.clone(),
            unknown_keys: c.unknown_keys,
            windows_emitted: c.windows_emitted,
            revisions_emitted: c.revisions_emitted,
            events_emitted: c.events_emitted,
            late_records: c.late_records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{synthetic, Now, StationFlow};

    /// A flow of 6 stations some way into their records, late ones among them.
    fn flow() -> StationFlow {
        let mut flow = StationFlow::new(synthetic::plant(6), FlowConfig::default());
        let mut records: Vec<_> = synthetic::signals(6, 4_000, 1_000, 3).collect();
        // Every seventh record arrives five minutes late.
        for i in (0..records.len() - 400).step_by(7) {
            records.swap(i, i + 300);
        }
        let mut now = i64::MIN;
        for (i, r) in records.iter().enumerate() {
            now = now.max(r.ts);
            flow.apply(r, Now(now));
            if i % 500 == 499 {
                let _ = flow.advance(Now(now));
            }
        }
        flow
    }

    fn through_json(snapshot: &FlowSnapshot) -> FlowSnapshot {
        let json = serde_json::to_vec(snapshot).expect("serialises");
        serde_json::from_slice(&json).expect("reads back")
    }

    #[test]
    fn a_restored_flow_saves_what_it_was_restored_from() {
        let flow = flow();
        let saved = flow.snapshot();
        assert!(saved.stations.iter().any(|s| !s.records.blocks.is_empty()));
        assert!(!saved.error_codes.is_empty());
        let restored = StationFlow::restore(synthetic::plant(6), through_json(&saved));
        assert_eq!(restored.expect("whole").snapshot(), saved);
    }

    /// Each fault a checkpoint's valid JSON may hide is refused, naming the station,
    /// rather than a panic once the flow runs on it.
    #[test]
    fn damaged_stations_are_refused_naming_them() {
        let saved = flow().snapshot();
        let code = saved.stations[2].code.clone();
        let refused = |damage: &dyn Fn(&mut format2::Station)| {
            let mut snapshot = saved.clone();
            damage(&mut snapshot.stations[2]);
            let err = StationFlow::restore(synthetic::plant(6), snapshot).err();
            match err.expect("refused") {
                RestoreError::Station { station, fault } if station == code => fault,
                other => panic!("{other}"),
            }
        };
        assert_eq!(
            refused(&|s| s.snapshots.clear()),
            "it has no state at or before its horizon"
        );
        assert_eq!(
            refused(&|s| s.horizon += 1),
            "its horizon or first window is not at a minute"
        );
        let unknown = saved.error_codes.len() as u32;
        let fault = refused(&|s| {
            let first = s.snapshots.values_mut().next().unwrap();
            first.state.error = Some(unknown);
        });
        assert!(fault.ends_with(&format!("unknown error code {unknown} of {unknown}")));
        let fault = refused(&|s| s.records.hot[0].obs[0] = format2::Observation::Error(Some(99)));
        assert!(fault.ends_with(&format!("unknown error code 99 of {unknown}")));
        let fault = refused(&|s| s.records.blocks.swap(0, 1));
        assert!(fault.ends_with("is out of place"), "{fault}");
        let fault = refused(&|s| s.records.blocks[0].count += 1);
        assert!(fault.ends_with("it ends early"), "{fault}");
        assert_eq!(refused(&|s| s.seqs.base = 3), "its seq numbers start at 3");

        let mut twice = saved.clone();
        twice.error_codes.push(twice.error_codes[0].clone());
        let err = StationFlow::restore(synthetic::plant(6), twice).err();
        assert!(matches!(err, Some(RestoreError::Flow(_))), "{err:?}");
    }
}
