//! A company-sized context: 100,000 stations index with each station's schedule,
//! planned stops (its own, its line's, its plant's) and downtime causes gathered once,
//! one shift calendar per time zone and pattern, shared, and the context's entries read
//! a few times each. A scan of a list per station (which once made this index take
//! minutes) would read billions of entries here, and fails the count, not a timing.

use stationflow_operators::synthetic;
use stationflow_operators::ContextIndex;
use stationflow_schemas::context::{DowntimeCause, PlannedStop, Ts};

const STATIONS: usize = 100_000;
const HOUR_MS: i64 = 3_600_000;
/// 2026-03-02T00:00:00Z.
const DAY_MS: i64 = 1_772_409_600_000;

fn stop(
    station: Option<String>,
    line: Option<&str>,
    plant: Option<&str>,
    hour: i64,
) -> PlannedStop {
    PlannedStop {
        station,
        line: line.map(String::from),
        plant: plant.map(String::from),
        start: Ts(DAY_MS + hour * HOUR_MS),
        end: Ts(DAY_MS + hour * HOUR_MS + HOUR_MS / 2),
        reason: Some("maintenance".into()),
        valid_from: None,
    }
}

#[test]
fn a_hundred_thousand_stations_index_in_work_proportional_to_the_entries() {
    let mut context = synthetic::plant(STATIONS);
    let codes: Vec<String> = context.stations.iter().map(|s| s.code.clone()).collect();
    // A stop for each plant, each line, and one in a hundred stations.
    context.planned_stops.push(stop(None, None, Some("LDN"), 1));
    context.planned_stops.push(stop(None, None, Some("CHI"), 2));
    context
        .planned_stops
        .push(stop(None, Some("LDN-L1"), None, 3));
    context
        .planned_stops
        .push(stop(None, Some("CHI-L1"), None, 4));
    let own_stops: Vec<PlannedStop> = (codes.iter().step_by(100))
        .map(|code| stop(Some(code.clone()), None, None, 5))
        .collect();
    context.planned_stops.extend(own_stops);
    // A cause for one in ten stations.
    let causes: Vec<DowntimeCause> = (codes.iter().step_by(10))
        .map(|code| DowntimeCause {
            station: code.clone(),
            start: Ts(DAY_MS + 6 * HOUR_MS),
            end: Ts(DAY_MS + 7 * HOUR_MS),
            reason: "jam".into(),
            valid_from: None,
        })
        .collect();
    context.downtime_causes.extend(causes);

    // Every station is on one line of its plant, so each gets its plant's stop and its
    // line's: two, plus its own.
    let want_gathered =
        context.schedule.len() + context.downtime_causes.len() + 2 * STATIONS + STATIONS / 100;
    assert!(!context.schedule.is_empty());
    let entries = context.plants.len()
        + context.skus.len()
        + context.stations.len()
        + context.schedule.len()
        + context.planned_stops.len()
        + context.downtime_causes.len();
    let index = ContextIndex::new(context);

    assert_eq!(index.station_count(), STATIONS);
    let work = index.work();
    assert_eq!(work.entries_gathered, want_gathered);
    // One pattern in the time zones of two plants.
    assert_eq!(work.calendars, 2);
    // At most three passes over each list, and a read of each entry gathered.
    let most = 3 * entries + want_gathered;
    assert!(
        (entries..=most).contains(&work.entries_read),
        "{} entries read for {entries} entries and {want_gathered} gathered (at most {most})",
        work.entries_read
    );
}
