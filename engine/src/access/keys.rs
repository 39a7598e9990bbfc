//! API keys (SPEC §7): who may read, which plants, until when. A key is a 256-bit random
//! secret shown once; the key file keeps only its HMAC-SHA-256 under the file's own random
//! key, so a copy of the file lets no one in. A secret names its key's public id
//! (`sfk_<id>_<secret>`), so a server finds the key without trying them all, and compares
//! the hash in constant time.

use std::path::{Path, PathBuf};

use crate::error::{bail, Context as _, Result};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a key may do: a member reads its plants' rows only; an admin reads every plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

/// One key as the file keeps it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub name: String,
    /// Public: the part of the secret that finds this record.
    pub id: String,
    pub role: Role,
    /// A member's plants (codes); empty for an admin.
    pub plants: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// HMAC-SHA-256 of the secret under the file's `hmac_key`, hex.
    pub hash: String,
}

/// Who is asking, once their key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The plants a member may read; empty for an admin (who reads all).
    pub plants: Vec<String>,
}

impl Principal {
    /// The plants this principal is limited to, or `None` for all.
    pub fn plant_scope(&self) -> Option<&[String]> {
        match self.role {
            Role::Admin => None,
            Role::Member => Some(&self.plants),
        }
    }
}

/// Why a presented key let no one in. The text is the same for an unknown key and a wrong
/// secret, so a caller learns nothing about which names exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key {0:?} was revoked")]
    Revoked(String),
    #[error("the API key {0:?} expired at {1}")]
    Expired(String, DateTime<Utc>),
}

#[derive(Debug, Serialize, Deserialize)]
struct FileBody {
    /// The HMAC key of this file's hashes, hex (random, 32 bytes).
    hmac_key: String,
    keys: Vec<KeyRecord>,
}

/// The key file: `./stationflow-keys.json` unless told otherwise.
pub struct KeyFile {
    path: PathBuf,
    hmac_key: Vec<u8>,
    keys: Vec<KeyRecord>,
}

pub const DEFAULT_KEY_FILE: &str = "stationflow-keys.json";

const SECRET_PREFIX: &str = "sfk_";

impl KeyFile {
    /// Reads the key file at `path`; one that does not exist yet is empty (and gets its
    /// HMAC key when first saved).
    pub fn load(path: &Path) -> Result<KeyFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyFile {
                    path: path.to_path_buf(),
                    hmac_key: random_bytes::<32>()?.to_vec(),
                    keys: Vec::new(),
                })
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading key file {}", path.display()))
            }
        };
        let body: FileBody = serde_json::from_str(&text).with_context(|| {
            format!("key file {} is not a stationflow key file", path.display())
        })?;
        let hmac_key = hex::decode(&body.hmac_key)
            .ok()
            .filter(|k| k.len() >= 32)
            .with_context(|| {
                format!("key file {}: hmac_key is not 32 hex bytes", path.display())
            })?;
        Ok(KeyFile {
            path: path.to_path_buf(),
            hmac_key,
            keys: body.keys,
        })
    }

    pub fn keys(&self) -> &[KeyRecord] {
        &self.keys
    }

    /// Writes the file whole (a temporary file renamed over it), readable by its owner
    /// only.
    pub fn save(&self) -> Result<()> {
        let body = FileBody {
            hmac_key: hex::encode(&self.hmac_key),
            keys: self.keys.clone(),
        };
        let text = serde_json::to_string_pretty(&body)? + "\n";
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing key file {}", self.path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        std::io::Write::write_all(&mut temp, text.as_bytes())?;
        temp.as_file().sync_all()?;
        temp.persist(&self.path)
            .with_context(|| format!("writing key file {}", self.path.display()))?;
        Ok(())
    }

    /// Adds a key and returns its secret (the only time it exists outside the caller).
    /// Members need plants and an expiry; admins read every plant and take no plants.
    pub fn create(
        &mut self,
        name: &str,
        role: Role,
        plants: &[String],
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        check_name(name)?;
        if self.keys.iter().any(|k| k.name == name) {
            bail!("a key named {name:?} exists already (names are never reused, even revoked)");
        }
        match role {
            Role::Member if plants.is_empty() => {
                bail!("a member key needs --plants: the plants it may read")
            }
            Role::Member if expires_at.is_none() => {
                bail!("a member key needs --expires-in (such as 90d)")
            }
            Role::Admin if !plants.is_empty() => {
                bail!("an admin key reads every plant: leave out --plants")
            }
            _ => {}
        }
        if expires_at.is_some_and(|e| e <= now) {
            bail!("the expiry must be in the future");
        }
        let id = hex::encode(random_bytes::<8>()?);
        let secret = format!("{SECRET_PREFIX}{id}_{}", hex::encode(random_bytes::<32>()?));
        self.keys.push(KeyRecord {
            name: name.to_string(),
            id,
            role,
            plants: plants.to_vec(),
            created_at: now,
            expires_at,
            revoked_at: None,
            hash: hex::encode(self.mac(&secret)),
        });
        Ok(secret)
    }

    /// Revokes the key `name` from `now` on; revoking it again changes nothing.
    pub fn revoke(&mut self, name: &str, now: DateTime<Utc>) -> Result<()> {
        let Some(key) = self.keys.iter_mut().find(|k| k.name == name) else {
            bail!("no key named {name:?}");
        };
        key.revoked_at.get_or_insert(now);
        Ok(())
    }

    /// The principal a presented secret stands for at `now`. `user`, where the protocol
    /// names one (PostgreSQL's user), must be the key's name.
    pub fn authenticate(
        &self,
        secret: &str,
        user: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Principal, Refusal> {
        let id = secret
            .strip_prefix(SECRET_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(Refusal::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(Refusal::Invalid)?;
        let stored = hex::decode(&key.hash).map_err(|_| Refusal::Invalid)?;
        let presented = self.mac(secret);
        if !bool::from(presented.as_slice().ct_eq(&stored)) {
            return Err(Refusal::Invalid);
        }
        if user.is_some_and(|u| u != key.name) {
            return Err(Refusal::Invalid);
        }
        if key.revoked_at.is_some_and(|r| r <= now) {
            return Err(Refusal::Revoked(key.name.clone()));
        }
        if let Some(expiry) = key.expires_at.filter(|e| *e <= now) {
            return Err(Refusal::Expired(key.name.clone(), expiry));
        }
        Ok(Principal {
            name: key.name.clone(),
            role: key.role,
            plants: key.plants.clone(),
        })
    }

    fn mac(&self, secret: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.hmac_key).expect("any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A key's name is the PostgreSQL user it signs in as: 1–64 letters, digits, `_`, `-`,
/// `.` or `@`.
fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if !ok {
        bail!("key name {name:?}: use 1 to 64 letters, digits, '_', '-', '.' or '@'");
    }
    Ok(())
}

/// A duration such as `90d`, `12h` or `30m`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("{text:?}: give a duration such as 90d, 12h or 30m"))?;
    Ok(match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        "s" => chrono::Duration::seconds(n),
        _ => bail!("{text:?}: give a duration such as 90d, 12h or 30m"),
    })
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).context("no random bytes")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn file(dir: &Path) -> KeyFile {
        KeyFile::load(&dir.join("keys.json")).unwrap()
    }

    #[test]
    fn a_key_lets_its_holder_in_until_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-12-06T12:00:00Z");
        let mut keys = file(dir.path());
        let leeds = vec!["LEEDS".to_string()];
        let expiry = Some(now + chrono::Duration::days(90));
        let secret = keys
            .create("grafana", Role::Member, &leeds, expiry, now)
            .unwrap();
        let admin = keys.create("ops", Role::Admin, &[], None, now).unwrap();
        keys.save().unwrap();

        let keys = file(dir.path());
        let who = keys.authenticate(&secret, Some("grafana"), now).unwrap();
        assert_eq!(who.plant_scope(), Some(&leeds[..]));
        assert_eq!(
            keys.authenticate(&admin, None, now).unwrap().plant_scope(),
            None
        );
        // The file holds no secret.
        let text = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!text.contains(&secret[20..]) && !text.contains(&admin[20..]));

        let later = now + chrono::Duration::days(91);
        assert!(matches!(
            keys.authenticate(&secret, None, later),
            Err(Refusal::Expired(..))
        ));
        let mut keys = keys;
        keys.revoke("ops", now).unwrap();
        assert_eq!(
            keys.authenticate(&admin, None, now),
            Err(Refusal::Revoked("ops".into()))
        );
    }

    #[test]
    fn wrong_secrets_names_and_ids_are_all_just_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-12-06T12:00:00Z");
        let mut keys = file(dir.path());
        let secret = keys.create("ops", Role::Admin, &[], None, now).unwrap();
        let mut flipped = secret.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for presented in [flipped.as_str(), "", "sfk_", "sfk_0000_00", "not a key"] {
            assert_eq!(
                keys.authenticate(presented, None, now),
                Err(Refusal::Invalid)
            );
        }
        assert_eq!(
            keys.authenticate(&secret, Some("someone"), now),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn members_need_plants_and_an_expiry_and_names_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-12-06T12:00:00Z");
        let soon = Some(now + chrono::Duration::days(1));
        let mut keys = file(dir.path());
        let p = vec!["P".to_string()];
        assert!(keys.create("a", Role::Member, &[], soon, now).is_err());
        assert!(keys.create("a", Role::Member, &p, None, now).is_err());
        assert!(keys.create("a", Role::Admin, &p, None, now).is_err());
        assert!(keys
            .create("bad name", Role::Admin, &[], None, now)
            .is_err());
        keys.create("a", Role::Member, &p, soon, now).unwrap();
        keys.revoke("a", now).unwrap();
        assert!(keys.create("a", Role::Member, &p, soon, now).is_err());
        assert_eq!(parse_duration("90d").unwrap(), chrono::Duration::days(90));
        assert!(parse_duration("90").is_err() && parse_duration("-1d").is_err());
    }
}
