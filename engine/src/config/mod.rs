//! The live engine's settings: the embedded `default.toml` (every key, documented), then
//! the user's file, then `STATIONFLOW__SECTION__KEY` environment variables. Unknown keys
//! are errors naming the key and where it came from, so a typo never silently falls back
//! to a default.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use stationflow_operators::FlowConfig;
use stationflow_schemas::time::parse_rfc3339_ms;

use crate::store::StoreSettings;

/// The documented defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    pub kafka: KafkaSettings,
    pub context: ContextSettings,
    pub windows: WindowSettings,
    pub output: OutputSettings,
    pub checkpoint: CheckpointSettings,
    pub store: StoreSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub signals_topic: String,
    pub context_topic: String,
    pub windows_topic: String,
    pub alerts_topic: String,
    pub dlq_topic: String,
    pub session_timeout_ms: u32,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSettings {
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    pub out_of_orderness_s: u32,
    pub allowed_lateness_s: u32,
    pub idle_timeout_s: u32,
    pub max_clock_skew_s: u32,
    pub earliest_ts: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    pub root: String,
    pub queue_memory_mb: u32,
    pub spool_dir: String,
    pub spool_max_mb: u32,
    pub sums_interval_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSettings {
    pub root: String,
    pub interval_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: String,
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(String),
    #[error("{0}")]
    Invalid(String),
}

impl LiveConfig {
    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Missing(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: LiveConfig = figment
            .merge(Env::prefixed("STATIONFLOW__").split("__"))
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(what.to_string()));
        if self.kafka.brokers.trim().is_empty() {
            return invalid("kafka.brokers is empty: name at least one broker");
        }
        if self.kafka.signals_topic.trim().is_empty() {
            return invalid("kafka.signals_topic is empty");
        }
        if self.context.file.is_empty() && self.kafka.context_topic.is_empty() {
            return invalid("no context: set context.file, kafka.context_topic, or both");
        }
        if self.checkpoint.interval_s == 0 {
            return invalid("checkpoint.interval_s must be at least 1");
        }
        if parse_rfc3339_ms(&self.windows.earliest_ts).is_none() {
            return invalid("windows.earliest_ts is not an RFC 3339 time with an offset");
        }
        Ok(())
    }

    /// The event-time settings the operators take.
    pub fn flow(&self) -> FlowConfig {
        let ms = |s: u32| i64::from(s) * 1000;
        FlowConfig {
            out_of_orderness_ms: ms(self.windows.out_of_orderness_s),
            allowed_lateness_ms: ms(self.windows.allowed_lateness_s),
            idle_timeout_ms: ms(self.windows.idle_timeout_s),
            max_clock_skew_ms: Some(ms(self.windows.max_clock_skew_s)),
            earliest_ts_ms: parse_rfc3339_ms(&self.windows.earliest_ts)
                .expect("validated when the config was loaded"),
            ..FlowConfig::default()
        }
    }

    /// Where checkpoints go: the configured root, or `<output.root>/_checkpoints`.
    pub fn checkpoint_root(&self) -> String {
        if self.checkpoint.root.is_empty() {
            format!("{}/_checkpoints", self.output.root.trim_end_matches('/'))
        } else {
            self.checkpoint.root.clone()
        }
    }

    /// The effective settings as TOML, with secrets masked (`kafka.options` whose key
    /// names a password, secret, token, credential or private key).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for (key, value) in &mut shown.kafka.options {
            if is_secret_option(key) {
                *value = MASK.into();
            }
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// What a masked secret shows.
pub const MASK: &str = "********";

/// Whether a librdkafka setting holds a secret: `sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, `sasl.jaas.config`, …
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "jaas",
        "key.pem",
        "private",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Every error figment found, each with its key and source.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            let source = if from_env {
                let var: Vec<String> = e.path.iter().map(|p| p.to_uppercase()).collect();
                format!("environment variable STATIONFLOW__{}", var.join("__"))
            } else {
                e.metadata
                    .as_ref()
                    .and_then(|m| m.source.as_ref().map(|s| s.to_string()))
                    .or_else(|| e.metadata.as_ref().map(|m| m.name.to_string()))
                    .unwrap_or_default()
            };
            let key = if key.is_empty() {
                String::new()
            } else {
                format!("{key}: ")
            };
            let from = if source.is_empty() {
                String::new()
            } else {
                format!(" (from {source})")
            };
            format!("{key}{}{from}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// `default.toml` says what the operators' defaults are, and no other thing.
    #[test]
    fn the_default_file_holds_the_operators_defaults() {
        let config: LiveConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(config.flow(), FlowConfig::DEFAULT);
    }

    #[test]
    fn defaults_file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "stationflow.toml",
                "[kafka]\nbrokers = \"k1:9092,k2:9092\"\n[kafka.options]\n\"security.protocol\" = \"SSL\"\n\
                 [context]\nfile = \"plant.toml\"\n[windows]\nidle_timeout_s = 300\n",
            )?;
            jail.set_env("STATIONFLOW__WINDOWS__IDLE_TIMEOUT_S", "600");
            jail.set_env("STATIONFLOW__KAFKA__GROUP_ID", "line-2");
            let config = LiveConfig::load(Some(Path::new("stationflow.toml"))).unwrap();
            assert_eq!(config.kafka.brokers, "k1:9092,k2:9092");
            assert_eq!(config.kafka.options["security.protocol"], "SSL");
            assert_eq!(config.kafka.group_id, "line-2");
            assert_eq!(config.windows.idle_timeout_s, 600);
            assert_eq!(config.windows.allowed_lateness_s, 86400);
            assert_eq!(config.flow().max_clock_skew_ms, Some(300_000));
            assert_eq!(config.checkpoint_root(), "./stationflow-out/_checkpoints");
            let again: LiveConfig = toml::from_str(&config.to_toml()).unwrap();
            assert_eq!(again, config);
            Ok(())
        });
    }

    #[test]
    fn secrets_are_masked_when_shown() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "[kafka.options]\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.pem\" = \"PEM\"\n\
                 \"acks\" = \"all\"\n[context]\nfile = \"plant.toml\"\n",
            )?;
            let shown = LiveConfig::load(Some(Path::new("s.toml")))
                .unwrap()
                .to_toml();
            assert!(
                !shown.contains("hunter2") && !shown.contains("PEM"),
                "{shown}"
            );
            assert!(shown.contains(MASK) && shown.contains("\"all\""), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_name_the_key_and_source() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "typo.toml",
                "[context]\nfile = \"plant.toml\"\n[windows]\nidle_timout_s = 5\n",
            )?;
            let err = LiveConfig::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("idle_timout_s") && err.contains("typo.toml"),
                "{err}"
            );

            jail.create_file("ok.toml", "[context]\nfile = \"plant.toml\"\n")?;
            jail.set_env("STATIONFLOW__WINDOWS__IDLE_TIMEOUT_S", "soon");
            let err = LiveConfig::load(Some(Path::new("ok.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("windows.idle_timeout_s")
                    && err.contains("STATIONFLOW__WINDOWS__IDLE_TIMEOUT_S"),
                "{err}"
            );
            jail.set_env("STATIONFLOW__WINDOWS__IDLE_TIMEOUT_S", "60");

            let err = LiveConfig::load(None).unwrap_err().to_string();
            assert!(err.contains("no context"), "{err}");
            let missing = LiveConfig::load(Some(Path::new("nowhere.toml")));
            assert!(matches!(missing, Err(ConfigError::Missing(_))));
            Ok(())
        });
    }
}
