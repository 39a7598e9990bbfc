//! Alerts (SPEC §3, §5): the context's alert rules judged on each station's windows as
//! they are first emitted, and downtime spans announced when they start and end.
//!
//! A rule watches the stations its scope names — a station, every station of a line or
//! of a plant, or every station when it names none — and judges each station's windows
//! on their own: it fires when its condition has held for `for_minutes` consecutive
//! windows and clears at the first window where it does not. A window without a value
//! for the metric (OEE without planned time) does not meet the condition. Alerts are
//! about the present: revisions of past windows do not fire or clear rules.

use std::collections::{BTreeMap, VecDeque};

use stationflow_schemas::alert::{Alert, AlertKind};
use stationflow_schemas::context::{AlertRule, Context};
use stationflow_schemas::time::MINUTE_MS;
use stationflow_schemas::window::{DowntimeEvent, StationWindow};

use crate::checkpoint::{format2, AlertSnapshot};

/// The context's rules, each name with its versions in `valid_from` order.
#[derive(Debug, Clone, Default)]
pub struct AlertRules {
    rules: BTreeMap<String, Vec<AlertRule>>,
}

impl AlertRules {
    /// Fails naming the rule whose metric is not a numeric window column.
    pub fn new(context: &Context) -> Result<Self, String> {
        let probe = StationWindow::default();
        let mut rules: BTreeMap<String, Vec<AlertRule>> = BTreeMap::new();
        for rule in &context.alert_rules {
            if probe.metric(&rule.metric).is_none() {
                return Err(format!(
                    "alert_rules `{}`: metric `{}` is not a numeric column of station_windows",
                    rule.name, rule.metric
                ));
            }
            rules
                .entry(rule.name.clone())
                .or_default()
                .push(rule.clone());
        }
        for versions in rules.values_mut() {
            versions.sort_by_key(|r| r.valid_from.map_or(i64::MIN, |t| t.0));
        }
        Ok(AlertRules { rules })
    }

    /// The version of each rule valid at the window's start that watches its station.
    fn watching<'a>(&'a self, w: &'a StationWindow) -> impl Iterator<Item = &'a AlertRule> {
        self.rules.values().filter_map(move |versions| {
            let rule = versions
                .iter()
                .rev()
                .find(|r| r.valid_from.is_none_or(|t| t.0 <= w.window_start))?;
            watches(rule, w).then_some(rule)
        })
    }
}

fn watches(rule: &AlertRule, w: &StationWindow) -> bool {
    match (&rule.station, &rule.line, &rule.plant) {
        (Some(s), _, _) => **s == *w.station,
        (None, Some(l), _) => w.line.as_deref() == Some(l.as_str()),
        (None, None, Some(p)) => **p == *w.plant,
        (None, None, None) => true,
    }
}

fn holds(rule: &AlertRule, value: Option<f64>) -> bool {
    let Some(v) = value.filter(|v| !v.is_nan()) else {
        return false;
    };
    let t = rule.threshold;
    match rule.op.as_str() {
        ">" => v > t,
        ">=" => v >= t,
        "<" => v < t,
        "<=" => v <= t,
        "==" => v == t,
        "!=" => v != t,
        _ => false, // the context loader admits no other
    }
}

/// What the alerts remember between windows; part of a partition's checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    stations: BTreeMap<String, StationAlerts>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct StationAlerts {
    /// The next window expected: a gap restarts every streak.
    next_window: Option<i64>,
    /// Per rule: where the current streak began and how many windows it has.
    streaks: BTreeMap<String, Streak>,
    /// The downtime span open now (announced as started) and not yet ended.
    underway: Option<DowntimeEvent>,
    /// Starts of the spans most recently announced: one withdrawn by later data and then
    /// seen again is not announced twice.
    announced: VecDeque<i64>,
}

/// How many announced span starts a station remembers.
const ANNOUNCED_KEPT: usize = 64;

impl StationAlerts {
    /// Announces the span's start unless it already was.
    fn announce(&mut self, e: &DowntimeEvent, out: &mut Vec<Alert>) {
        if self.announced.contains(&e.start) {
            return;
        }
        out.push(downtime_alert(AlertKind::DowntimeStarted, e));
        self.announced.push_back(e.start);
        if self.announced.len() > ANNOUNCED_KEPT {
            self.announced.pop_front();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Streak {
    since: i64,
    windows: u32,
    firing: bool,
}

impl AlertState {
    /// What a checkpoint keeps of the state.
    pub fn snapshot(&self) -> AlertSnapshot {
        let stations = self.stations.iter().map(|(code, s)| {
            let streaks = (s.streaks.iter())
                .map(|(rule, k)| {
                    let streak = format2::Streak {
                        since: k.since,
                        windows: k.windows,
                        firing: k.firing,
                    };
                    (rule.clone(), streak)
                })
                .collect();
            let saved = format2::StationAlerts {
                next_window: s.next_window,
                streaks,
                underway: s.underway.clone(),
                announced: s.announced.iter().copied().collect(),
            };
            (code.clone(), saved)
        });
        AlertSnapshot {
            stations: stations.collect(),
        }
    }

    /// The state a checkpoint kept.
    pub fn restore(saved: AlertSnapshot) -> AlertState {
        let stations = saved.stations.into_iter().map(|(code, s)| {
            let streaks = (s.streaks.into_iter())
                .map(|(rule, k)| {
                    let streak = Streak {
                        since: k.since,
                        windows: k.windows,
                        firing: k.firing,
                    };
                    (rule, streak)
                })
                .collect();
            let restored = StationAlerts {
                next_window: s.next_window,
                streaks,
                underway: s.underway,
                announced: s.announced.into(),
            };
            (code, restored)
        });
        AlertState {
            stations: stations.collect(),
        }
    }

    /// Alerts from one batch of a flow's output: first-emitted windows judged against
    /// the rules, closed downtime spans (revision 0) and the spans open now.
    pub fn observe(
        &mut self,
        rules: &AlertRules,
        windows: &[StationWindow],
        events: &[DowntimeEvent],
        underway: &BTreeMap<String, Option<DowntimeEvent>>,
        now: i64,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut first: Vec<&StationWindow> = windows.iter().filter(|w| w.revision == 0).collect();
        first.sort_by(|a, b| (&a.station, a.window_start).cmp(&(&b.station, b.window_start)));
        for w in first {
            self.judge(rules, w, &mut out);
        }
        for e in events.iter().filter(|e| e.revision == 0) {
            self.span_closed(e, &mut out);
        }
        for (station, open) in underway {
            self.span_open(station, open.as_ref(), &mut out);
        }
        for a in &mut out {
            a.emitted_at = now;
        }
        out
    }

    fn judge(&mut self, rules: &AlertRules, w: &StationWindow, out: &mut Vec<Alert>) {
        // Looked up by `&str` first: a window for a known station allocates no key.
        if !self.stations.contains_key(&*w.station) {
            self.stations
                .insert(String::from(&*w.station), StationAlerts::default());
        }
        let Some(station) = self.stations.get_mut(&*w.station) else {
            return;
        };
        if station.next_window != Some(w.window_start) {
            station.streaks.retain(|_, s| s.firing);
        }
        station.next_window = Some(w.window_start + MINUTE_MS);
        for rule in rules.watching(w) {
            let value = w.metric(&rule.metric).flatten();
            let held = holds(rule, value);
            let alert = |kind, since| {
                let mut a = rule_alert(kind, w, rule, since);
                a.value = value;
                a
            };
            match (held, station.streaks.get_mut(&rule.name)) {
                (true, Some(s)) => {
                    s.windows += 1;
                    if !s.firing && s.windows >= rule.for_minutes.max(1) {
                        s.firing = true;
                        out.push(alert(AlertKind::RuleFired, s.since));
                    }
                }
                (true, None) => {
                    let firing = rule.for_minutes <= 1;
                    if firing {
                        out.push(alert(AlertKind::RuleFired, w.window_start));
                    }
                    let s = Streak {
                        since: w.window_start,
                        windows: 1,
                        firing,
                    };
                    station.streaks.insert(rule.name.clone(), s);
                }
                (false, Some(s)) => {
                    let firing = s.firing;
                    station.streaks.remove(&rule.name);
                    if firing {
                        out.push(alert(AlertKind::RuleCleared, w.window_start));
                    }
                }
                (false, None) => {}
            }
        }
    }

    /// A span seen whole: announced as started first if it never was.
    fn span_closed(&mut self, e: &DowntimeEvent, out: &mut Vec<Alert>) {
        let station = self.stations.entry(e.station.clone()).or_default();
        if station
            .underway
            .as_ref()
            .is_some_and(|u| u.start == e.start)
        {
            station.underway = None;
        }
        station.announce(e, out);
        let mut ended = downtime_alert(AlertKind::DowntimeEnded, e);
        ended.end = Some(e.end);
        out.push(ended);
    }

    /// The span open now: announced once. An announced span that neither closed nor is
    /// still open was withdrawn by later data: it ends as `retracted`. Should later data
    /// bring it back, its end is announced again but not its start.
    fn span_open(&mut self, code: &str, open: Option<&DowntimeEvent>, out: &mut Vec<Alert>) {
        let station = self.stations.entry(code.to_string()).or_default();
        let open_start = open.map(|e| e.start);
        if let Some(gone) = station.underway.take_if(|u| Some(u.start) != open_start) {
            let mut ended = downtime_alert(AlertKind::DowntimeEnded, &gone);
            ended.end = Some(gone.start);
            ended.reason = Some("retracted".into());
            ended.error_code = None;
            out.push(ended);
        }
        if let Some(e) = open.filter(|_| station.underway.is_none()) {
            station.announce(e, out);
            station.underway = Some(e.clone());
        }
    }
}

fn rule_alert(kind: AlertKind, w: &StationWindow, rule: &AlertRule, since: i64) -> Alert {
    let mut a = Alert::new(kind, &w.plant, w.line.as_deref(), &w.station, since);
    a.rule = Some(rule.name.clone());
    a.metric = Some(rule.metric.clone());
    a.op = Some(rule.op.clone());
    a.threshold = Some(rule.threshold);
    a.window_start = Some(w.window_start);
    a
}

fn downtime_alert(kind: AlertKind, e: &DowntimeEvent) -> Alert {
    let mut a = Alert::new(kind, &e.plant, e.line.as_deref(), &e.station, e.start);
    a.reason = Some(e.reason.clone());
    a.error_code = e.error_code.clone();
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use stationflow_schemas::context::Ts;

    const T0: i64 = 1_772_438_400_000; // 2026-03-02T08:00Z

    fn rule(name: &str, metric: &str, op: &str, threshold: f64, for_minutes: u32) -> AlertRule {
        AlertRule {
            name: name.into(),
            station: None,
            line: None,
            plant: None,
            metric: metric.into(),
            op: op.into(),
            threshold,
            for_minutes,
            valid_from: None,
        }
    }

    fn rules(list: Vec<AlertRule>) -> AlertRules {
        let context = Context {
            alert_rules: list,
            ..Context::default()
        };
        AlertRules::new(&context).expect("rules")
    }

    fn window(station: &str, minute: i64, oee: Option<f64>) -> StationWindow {
        StationWindow {
            plant: "LEEDS".into(),
            line: Some(if station.starts_with('A') { "L1" } else { "L2" }.into()),
            station: station.into(),
            window_start: T0 + minute * MINUTE_MS,
            window_end: T0 + (minute + 1) * MINUTE_MS,
            oee,
            ..StationWindow::default()
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, String, i64)> {
        alerts
            .iter()
            .map(|a| (a.kind, a.station.clone(), (a.since - T0) / MINUTE_MS))
            .collect()
    }

    fn judge(state: &mut AlertState, rules: &AlertRules, windows: &[StationWindow]) -> Vec<Alert> {
        state.observe(rules, windows, &[], &BTreeMap::new(), T0)
    }

    #[test]
    fn fires_after_for_minutes_and_clears_at_the_first_window_that_does_not_hold() {
        let rules = rules(vec![rule("low-oee", "oee", "<", 0.5, 3)]);
        let mut state = AlertState::default();
        let oee = [0.4, 0.4, 0.4, 0.3, 0.6, 0.4];
        let mut got = Vec::new();
        for (m, v) in oee.iter().enumerate() {
            got.extend(judge(
                &mut state,
                &rules,
                &[window("A1", m as i64, Some(*v))],
            ));
        }
        assert_eq!(
            kinds(&got),
            vec![
                (AlertKind::RuleFired, "A1".into(), 0),
                (AlertKind::RuleCleared, "A1".into(), 4),
            ]
        );
        assert_eq!(
            got[0].window_start,
            Some(T0 + 2 * MINUTE_MS),
            "fired by the third"
        );
        assert_eq!(got[0].value, Some(0.4));
        assert_eq!(got[1].value, Some(0.6));
        assert_eq!(got[0].rule.as_deref(), Some("low-oee"));
    }

    #[test]
    fn a_window_without_the_metric_does_not_hold_and_a_gap_restarts_the_streak() {
        let rules = rules(vec![rule("low-oee", "oee", "<", 0.5, 2)]);
        let mut state = AlertState::default();
        let batch = [
            window("A1", 0, Some(0.1)),
            window("A1", 1, None), // no planned time: breaks the streak
            window("A1", 2, Some(0.1)),
            window("A1", 4, Some(0.1)), // minute 3 missing: restarts
            window("A1", 5, Some(0.1)),
        ];
        let got = judge(&mut state, &rules, &batch);
        assert_eq!(kinds(&got), vec![(AlertKind::RuleFired, "A1".into(), 4)]);
    }

    #[test]
    fn scope_picks_the_stations_and_each_is_judged_on_its_own() {
        let mut on_line = rule("l1-stops", "downtime_s", ">=", 30.0, 1);
        on_line.line = Some("L1".into());
        let rules = rules(vec![on_line]);
        let mut state = AlertState::default();
        let mut a = window("A1", 0, None);
        a.downtime_s = 45.0;
        let mut b = window("B1", 0, None);
        b.downtime_s = 60.0;
        let got = judge(&mut state, &rules, &[b, a]);
        assert_eq!(kinds(&got), vec![(AlertKind::RuleFired, "A1".into(), 0)]);
    }

    #[test]
    fn revisions_do_not_fire_or_clear() {
        let rules = rules(vec![rule("low-oee", "oee", "<", 0.5, 1)]);
        let mut state = AlertState::default();
        let mut revised = window("A1", 0, Some(0.1));
        revised.revision = 1;
        assert!(judge(&mut state, &rules, &[revised]).is_empty());
    }

    #[test]
    fn a_later_version_of_a_rule_applies_from_its_valid_from() {
        let first = rule("low-oee", "oee", "<", 0.5, 1);
        let mut stricter = rule("low-oee", "oee", "<", 0.8, 1);
        stricter.valid_from = Some(Ts(T0 + MINUTE_MS));
        let rules = rules(vec![stricter, first]);
        let mut state = AlertState::default();
        let got = judge(
            &mut state,
            &rules,
            &[window("A1", 0, Some(0.7)), window("A1", 1, Some(0.7))],
        );
        assert_eq!(kinds(&got), vec![(AlertKind::RuleFired, "A1".into(), 1)]);
        assert_eq!(got[0].threshold, Some(0.8));
    }

    #[test]
    fn an_unknown_metric_is_an_error_naming_the_rule() {
        let context = Context {
            alert_rules: vec![rule("typo", "oeee", "<", 0.5, 1)],
            ..Context::default()
        };
        let err = AlertRules::new(&context).expect_err("unknown metric");
        assert!(err.contains("`typo`") && err.contains("`oeee`"), "{err}");
    }

    fn span(station: &str, start_min: i64, end_min: i64, revision: i32) -> DowntimeEvent {
        DowntimeEvent {
            plant: "LEEDS".into(),
            line: None,
            station: station.into(),
            start: T0 + start_min * MINUTE_MS,
            end: T0 + end_min * MINUTE_MS,
            duration_s: ((end_min - start_min) * 60) as f64,
            downtime_s: ((end_min - start_min) * 60) as f64,
            reason: "E42".into(),
            error_code: Some("E42".into()),
            revision,
            emitted_at: 0,
        }
    }

    fn downtime(
        state: &mut AlertState,
        closed: &[DowntimeEvent],
        open: &[(&str, Option<DowntimeEvent>)],
    ) -> Vec<(AlertKind, String, i64)> {
        let open = open
            .iter()
            .map(|(s, e)| (s.to_string(), e.clone()))
            .collect();
        kinds(&state.observe(&AlertRules::default(), &[], closed, &open, T0))
    }

    #[test]
    fn downtime_is_announced_once_when_it_starts_and_once_when_it_ends() {
        let mut state = AlertState::default();
        let started = downtime(&mut state, &[], &[("A1", Some(span("A1", 3, 10, 0)))]);
        assert_eq!(started, vec![(AlertKind::DowntimeStarted, "A1".into(), 3)]);
        // Still open a minute later: nothing new.
        assert!(downtime(&mut state, &[], &[("A1", Some(span("A1", 3, 11, 0)))]).is_empty());
        let ended = downtime(&mut state, &[span("A1", 3, 12, 0)], &[("A1", None)]);
        assert_eq!(ended, vec![(AlertKind::DowntimeEnded, "A1".into(), 3)]);
    }

    /// Streaks, open spans and announced starts survive a checkpoint: the restored state
    /// neither fires twice nor announces a span again.
    #[test]
    fn a_checkpoint_keeps_streaks_and_announcements() {
        let rules = rules(vec![rule("low-oee", "oee", "<", 0.5, 2)]);
        let mut state = AlertState::default();
        let fired = judge(&mut state, &rules, &[window("A1", 0, Some(0.4))]);
        assert!(fired.is_empty());
        downtime(&mut state, &[], &[("B1", Some(span("B1", 0, 1, 0)))]);
        let json = serde_json::to_string(&state.snapshot()).expect("serialises");
        let mut restored = AlertState::restore(serde_json::from_str(&json).expect("reads"));
        assert_eq!(restored, state);
        let fired = judge(&mut restored, &rules, &[window("A1", 1, Some(0.4))]);
        assert_eq!(kinds(&fired), vec![(AlertKind::RuleFired, "A1".into(), 0)]);
        assert!(downtime(&mut restored, &[], &[("B1", Some(span("B1", 0, 2, 0)))]).is_empty());
    }

    #[test]
    fn a_span_seen_whole_is_announced_started_then_ended() {
        let mut state = AlertState::default();
        let closed = [span("A1", 3, 12, 0), span("A1", 20, 25, 1)]; // a revision: no alert
        let got = downtime(&mut state, &closed, &[("A1", None)]);
        assert_eq!(
            got,
            vec![
                (AlertKind::DowntimeStarted, "A1".into(), 3),
                (AlertKind::DowntimeEnded, "A1".into(), 3),
            ]
        );
    }

    #[test]
    fn a_span_withdrawn_by_later_data_ends_as_retracted() {
        let mut state = AlertState::default();
        downtime(&mut state, &[], &[("A1", Some(span("A1", 3, 10, 0)))]);
        let mut got = state.observe(
            &AlertRules::default(),
            &[],
            &[],
            &BTreeMap::from([("A1".to_string(), None)]),
            T0,
        );
        assert_eq!(got.len(), 1);
        let ended = got.pop().expect("ended");
        assert_eq!(ended.kind, AlertKind::DowntimeEnded);
        assert_eq!(ended.reason.as_deref(), Some("retracted"));
        assert_eq!(ended.plant, "LEEDS");
        // Back again, then over: its start is not announced twice.
        let back = downtime(&mut state, &[], &[("A1", Some(span("A1", 3, 12, 0)))]);
        assert!(back.is_empty(), "{back:?}");
        let over = downtime(&mut state, &[span("A1", 3, 14, 0)], &[("A1", None)]);
        assert_eq!(over, vec![(AlertKind::DowntimeEnded, "A1".into(), 3)]);
    }
}
