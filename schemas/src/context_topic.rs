//! The compacted context topic of SPEC §3 as a context: the context file's entities,
//! then the latest record of each key of the topic — what compaction keeps. A record's
//! key is `<kind>/<id>`, its value `{"kind": "<kind>", ...fields}` with the fields of
//! the context file; a null value (tombstone) withdraws the key's entity.
//!
//! A topic entity with the same identity as a file entity (kind, key fields and
//! `valid_from`) replaces it. Versions of one entity need keys of their own
//! (`stations/PRESS-01@2026-03-05`), or compaction keeps only the last. A record that
//! leaves the context invalid is refused and the context stays as it was.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::context::{Context, KINDS};
use crate::time::parse_rfc3339_ms;

/// One entity of the topic or the file: its kind and its fields (`kind` left out).
#[derive(Debug, Clone, PartialEq)]
struct Entity {
    kind: &'static str,
    fields: Map<String, Value>,
}

/// A record of the context topic that was refused, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("context record {key}: {message}")]
pub struct RefusedRecord {
    pub key: String,
    pub message: String,
}

/// One record of the topic as read: key, value (`None`: tombstone) and timestamp (ms).
#[derive(Debug, Clone, Copy)]
pub struct TopicRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp_ms: i64,
}

/// Further checks a new context must pass (the engine's: alert rule metrics exist).
pub type ContextCheck<'a> = &'a dyn Fn(&Context) -> Result<(), String>;

pub struct ContextTopic {
    source_name: String,
    base: Vec<Entity>,
    slots: BTreeMap<String, Entity>,
    context: Context,
}

impl ContextTopic {
    /// Starts from the context file's entities (`base`, already validated).
    pub fn new(base: &Context, source_name: &str) -> Self {
        ContextTopic {
            source_name: source_name.to_string(),
            base: entities_of(base),
            slots: BTreeMap::new(),
            context: base.clone(),
        }
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Applies the topic as read from its beginning, in order. Records that cannot be
    /// applied are refused (their index and why); the rest make the context.
    pub fn load(
        &mut self,
        records: &[TopicRecord<'_>],
        check: ContextCheck<'_>,
    ) -> Vec<(usize, RefusedRecord)> {
        // One validation for the whole topic when it is sound, the usual case…
        let before = self.slots.clone();
        let mut refused = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match parse(record) {
                Ok((key, Some(entity))) => {
                    self.slots.insert(key, entity);
                }
                Ok((key, None)) => {
                    self.slots.remove(&key);
                }
                Err(e) => refused.push((i, e)),
            }
        }
        match self.build(&self.slots, check) {
            Ok(context) => {
                self.context = context;
                refused
            }
            // …else record by record, to find the ones to refuse.
            Err(_) => {
                self.slots = before;
                records
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| self.apply(r, check).err().map(|e| (i, e)))
                    .collect()
            }
        }
    }

    /// Applies one record. `Ok(Some(t))`: the context changed, and windows from `t` on
    /// may differ; `Ok(None)`: nothing changed.
    pub fn apply(
        &mut self,
        record: &TopicRecord<'_>,
        check: ContextCheck<'_>,
    ) -> Result<Option<i64>, RefusedRecord> {
        let (key, entity) = parse(record)?;
        let old = self.slots.get(&key);
        if old == entity.as_ref() {
            return Ok(None);
        }
        let changed_from = match (&entity, old) {
            // A tombstone withdraws the entity from the record's timestamp on.
            (None, Some(old)) => record.timestamp_ms.max(start_of(old)),
            (None, None) => return Ok(None),
            (Some(new), old) => old.map_or(start_of(new), |o| start_of(o).min(start_of(new))),
        };
        let mut slots = self.slots.clone();
        match entity {
            Some(e) => slots.insert(key.clone(), e),
            None => slots.remove(&key),
        };
        let context = self
            .build(&slots, check)
            .map_err(|message| RefusedRecord { key, message })?;
        self.slots = slots;
        self.context = context;
        Ok(Some(changed_from))
    }

    fn build(
        &self,
        slots: &BTreeMap<String, Entity>,
        check: ContextCheck<'_>,
    ) -> Result<Context, String> {
        let replaced: BTreeSet<String> = slots.values().map(identity).collect();
        let mut doc = Map::new();
        let kept = self
            .base
            .iter()
            .filter(|e| !replaced.contains(&identity(e)));
        for e in kept.chain(slots.values()) {
            let list = doc
                .entry(e.kind)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::Object(e.fields.clone()));
            }
        }
        let context = Context::from_value(Value::Object(doc), &self.source_name)
            .map_err(|e| format!("{}: {}", e.entity, e.message))?;
        check(&context)?;
        Ok(context)
    }
}

/// The key and the entity (`None` for a tombstone) of a record.
fn parse(record: &TopicRecord<'_>) -> Result<(String, Option<Entity>), RefusedRecord> {
    let key = match record.key.map(std::str::from_utf8) {
        Some(Ok(k)) => k.to_string(),
        Some(Err(_)) => return Err(refused("(not UTF-8)", "the key is not UTF-8")),
        None => {
            return Err(refused(
                "(none)",
                "a context record needs a key <kind>/<id>",
            ))
        }
    };
    let key_kind = key
        .split_once('/')
        .and_then(|(kind, id)| kind_named(kind).filter(|_| !id.is_empty()))
        .ok_or_else(|| {
            refused(
                &key,
                &format!(
                    "the key must be <kind>/<id>, kind one of {}",
                    KINDS.join(", ")
                ),
            )
        })?;
    let Some(bytes) = record.value else {
        return Ok((key, None));
    };
    let mut fields = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(refused(&key, "the value must be a JSON object")),
        Err(e) => return Err(refused(&key, &format!("the value is not JSON: {e}"))),
    };
    let kind = fields.remove("kind");
    match kind.as_ref().and_then(Value::as_str).and_then(kind_named) {
        Some(kind) if kind == key_kind => {}
        _ => {
            return Err(refused(
                &key,
                &format!("the value's \"kind\" must be {key_kind:?}, as in the key"),
            ))
        }
    }
    Ok((
        key,
        Some(Entity {
            kind: key_kind,
            fields,
        }),
    ))
}

fn refused(key: &str, message: &str) -> RefusedRecord {
    RefusedRecord {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// A kind by its table name (`stations`) or singular (`station`).
fn kind_named(name: &str) -> Option<&'static str> {
    KINDS.into_iter().find(|k| {
        *k == name || k.strip_suffix('s') == Some(name) || (*k == "schedule" && name == "schedules")
    })
}

/// The fields that tell one entity of a kind from another (with `valid_from`).
fn key_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "shifts" => &["pattern", "name"],
        "schedule" | "downtime_causes" => &["station", "start"],
        "planned_stops" => &["station", "line", "plant", "start"],
        "alert_rules" => &["name"],
        _ => &["code"],
    }
}

/// Kind, key fields and `valid_from`, instants compared as instants.
fn identity(e: &Entity) -> String {
    let mut id = e.kind.to_string();
    for field in key_fields(e.kind).iter().chain(&["valid_from"]) {
        id.push('\u{1f}');
        match e.fields.get(*field) {
            None | Some(Value::Null) => id.push('-'),
            Some(v) => match instant(v) {
                Some(ms) if matches!(*field, "start" | "valid_from") => {
                    id.push_str(&ms.to_string())
                }
                _ => id.push_str(&v.to_string()),
            },
        }
    }
    id
}

fn instant(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_rfc3339_ms(s),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The earliest instant an entity can affect: a span's start, else its `valid_from`.
fn start_of(e: &Entity) -> i64 {
    let field = match e.kind {
        "schedule" | "planned_stops" | "downtime_causes" => "start",
        _ => "valid_from",
    };
    e.fields.get(field).and_then(instant).unwrap_or(i64::MIN)
}

fn entities_of(context: &Context) -> Vec<Entity> {
    let Ok(Value::Object(doc)) = serde_json::to_value(context) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (kind, items) in doc {
        let (Some(kind), Value::Array(items)) = (kind_named(&kind), items) else {
            continue;
        };
        for item in items {
            if let Value::Object(fields) = item {
                out.push(Entity { kind, fields });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[plants]]
code = "LEEDS"
timezone = "Europe/London"

[[stations]]
code = "PRESS-01"
plant = "LEEDS"
ideal_cycle_s = 1.0
idle_cost_per_minute = 2.0
"#;

    fn topic() -> ContextTopic {
        let base = Context::from_toml_str(FILE, "plant.toml").unwrap();
        ContextTopic::new(&base, "context topic")
    }

    fn no_check(_: &Context) -> Result<(), String> {
        Ok(())
    }

    fn record<'a>(key: &'a str, value: Option<&'a str>, ts: i64) -> TopicRecord<'a> {
        TopicRecord {
            key: Some(key.as_bytes()),
            value: value.map(str::as_bytes),
            timestamp_ms: ts,
        }
    }

    const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00Z

    #[test]
    fn the_file_alone_round_trips() {
        let t = topic();
        let base = Context::from_toml_str(FILE, "plant.toml").unwrap();
        assert_eq!(t.context(), &base);
        assert_eq!(t.build(&BTreeMap::new(), &no_check).unwrap(), base);
    }

    #[test]
    fn a_new_version_adds_and_says_from_when() {
        let mut t = topic();
        let v = r#"{"kind":"stations","code":"PRESS-01","plant":"LEEDS","ideal_cycle_s":0.8,
                    "valid_from":"2026-03-02T00:00:00Z"}"#;
        let changed = t.apply(&record("stations/PRESS-01@2", Some(v), 5), &no_check);
        assert_eq!(changed, Ok(Some(T0)));
        assert_eq!(t.context().stations.len(), 2);
        // The same record again changes nothing.
        let again = t.apply(&record("stations/PRESS-01@2", Some(v), 6), &no_check);
        assert_eq!(again, Ok(None));
    }

    #[test]
    fn a_topic_entity_replaces_the_files_with_the_same_identity() {
        let mut t = topic();
        let v = r#"{"kind":"station","code":"PRESS-01","plant":"LEEDS","ideal_cycle_s":0.5}"#;
        assert_eq!(
            t.apply(&record("stations/PRESS-01", Some(v), 5), &no_check),
            Ok(Some(i64::MIN))
        );
        assert_eq!(t.context().stations.len(), 1);
        assert_eq!(t.context().stations[0].ideal_cycle_s, Some(0.5));
    }

    #[test]
    fn a_tombstone_withdraws_from_its_timestamp_and_invalid_records_are_refused() {
        let mut t = topic();
        let stop = r#"{"kind":"planned_stops","station":"PRESS-01",
                       "start":"2026-03-02T06:00:00Z","end":"2026-03-02T07:00:00Z"}"#;
        let key = "planned_stops/PRESS-01@06:00";
        assert_eq!(
            t.apply(&record(key, Some(stop), 0), &no_check),
            Ok(Some(T0 + 6 * 3_600_000))
        );
        // Deleted at 06:30: windows from 06:30 on change.
        let half_past = T0 + 6 * 3_600_000 + 1_800_000;
        assert_eq!(
            t.apply(&record(key, None, half_past), &no_check),
            Ok(Some(half_past))
        );
        assert!(t.context().planned_stops.is_empty());

        let dangling = r#"{"kind":"schedule","station":"NOPE",
                           "start":"2026-03-02T06:00:00Z","end":"2026-03-02T07:00:00Z"}"#;
        let err = t
            .apply(&record("schedule/NOPE", Some(dangling), 0), &no_check)
            .unwrap_err();
        assert!(
            err.message.contains("station `NOPE` is not defined"),
            "{err}"
        );
        for (key, value, why) in [
            ("stations", Some("{}"), "<kind>/<id>"),
            ("widgets/X", Some("{}"), "<kind>/<id>"),
            ("stations/X", Some("[1]"), "JSON object"),
            ("stations/X", Some("{oops"), "not JSON"),
            ("stations/X", Some(r#"{"kind":"skus"}"#), "\"stations\""),
        ] {
            let err = t.apply(&record(key, value, 0), &no_check).unwrap_err();
            assert!(err.message.contains(why), "{key}: {err}");
        }
        let refuse_all = |_: &Context| Err("no rules today".to_string());
        let v = r#"{"kind":"plants","code":"X","timezone":"UTC"}"#;
        let err = t.apply(&record("plants/X", Some(v), 0), &refuse_all);
        assert_eq!(err.unwrap_err().message, "no rules today");
        assert_eq!(
            t.context().plants.len(),
            1,
            "refused records change nothing"
        );
    }

    #[test]
    fn loading_refuses_only_the_bad_records() {
        let mut t = topic();
        let good = r#"{"kind":"lines","code":"L1","plant":"LEEDS"}"#;
        let bad = r#"{"kind":"lines","code":"L2","plant":"NOWHERE"}"#;
        let records = [
            record("lines/L1", Some(good), 0),
            record("lines/L2", Some(bad), 0),
            record("lines/L3", Some("not json"), 0),
        ];
        let refused = t.load(&records, &no_check);
        let which: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(which, [1, 2]);
        assert_eq!(t.context().lines.len(), 1);
    }
}
