//! The audit log (SPEC §7): one JSON line per event — who signed in or was refused, what
//! they ran, keys, context changes, deletions, compactions — appended, each line carrying
//! the SHA-256 of the line before it (`prev`), so a changed or removed line breaks the
//! chain from there on. A chain proves only consistency: whoever can rewrite the file can
//! recompute it. So the head is also anchored now and then in the object store, by puts
//! that may create and never overwrite (`_audit/anchors/<seq>.json`); `verify` checks
//! both and names the first bad line.
//!
//! Appends take an exclusive lock on the file and read its last line under it, so a server
//! and a `delete` may write the same log.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use object_store::{path::Path as StorePath, ObjectStoreExt, PutMode, PutOptions};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{bail, Context as _, Result};
use crate::store::Root;

pub const DEFAULT_AUDIT_LOG: &str = "stationflow-audit.jsonl";

/// `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the anchors of a log live under a data root.
const ANCHORS: &str = "_audit/anchors";

/// The log's head: the last line's `seq` and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        AuditLog {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (`kind` and its fields, a JSON object; anything else is kept as
    /// its `detail`) and returns the new head. The line is on disk (synced) when this
    /// returns; an error means nothing was logged, and the caller must not go on with
    /// what it was about to do.
    pub fn append(&self, kind: &str, fields: Value) -> Result<Head> {
        let fields = match fields {
            Value::Object(fields) => fields,
            other => Map::from_iter([("detail".to_string(), other)]),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening audit log {}", self.path.display()))?;
        file.lock()
            .with_context(|| format!("locking audit log {}", self.path.display()))?;
        let head = read_head(&mut file)
            .with_context(|| format!("reading audit log {}", self.path.display()))?;
        let (seq, prev) = match head {
            Some(h) => (h.seq + 1, h.hash),
            None => (1, GENESIS.to_string()),
        };
        let mut entry = Map::new();
        entry.insert("seq".into(), json!(seq));
        entry.insert(
            "at".into(),
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        entry.insert("kind".into(), json!(kind));
        for (k, v) in fields {
            if !matches!(k.as_str(), "seq" | "at" | "kind" | "prev") {
                entry.insert(k, v);
            }
        }
        entry.insert("prev".into(), json!(prev));
        let line = serde_json::to_string(&Value::Object(entry))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing audit log {}", self.path.display()))?;
        Ok(Head {
            seq,
            hash: hash_line(line.as_bytes()),
        })
    }

    /// Anchors `head` under `root`: a put that only creates, so an anchor, once there,
    /// cannot be replaced.
    pub async fn anchor(root: &Root, head: &Head) -> Result<()> {
        let path = anchor_path(root, head.seq);
        let body = json!({"seq": head.seq, "hash": head.hash,
            "at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)});
        let options = PutOptions::from(PutMode::Create);
        match root
            .store
            .put_opts(&path, body.to_string().into_bytes().into(), options)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e).context("anchoring the audit log"),
        }
    }
}

fn anchor_path(root: &Root, seq: u64) -> StorePath {
    let name = format!("{ANCHORS}/{seq:020}.json");
    if root.prefix.as_ref().is_empty() {
        StorePath::from(name)
    } else {
        StorePath::from(format!("{}/{name}", root.prefix))
    }
}

/// SHA-256 of a line without its newline, hex.
pub fn hash_line(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// The head of the log in `file`, reading back from its end to its last line.
fn read_head(file: &mut File) -> Result<Option<Head>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut tail = Vec::new();
    let mut at = len;
    // Back a chunk at a time until the tail holds a newline before the last line.
    loop {
        let step = at.min(4096);
        at -= step;
        file.seek(SeekFrom::Start(at))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if at == 0 || body.contains(&b'\n') {
            break;
        }
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let last = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    };
    let value: Value = serde_json::from_slice(last).context("its last line is not JSON")?;
    let seq = value["seq"].as_u64().context("its last line has no seq")?;
    Ok(Some(Head {
        seq,
        hash: hash_line(last),
    }))
}

/// What `verify` found wrong: the first bad line (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log line {line}: {why}")]
pub struct BadLine {
    pub line: u64,
    pub why: String,
}

/// Checks the chain of the log at `path` line by line, then that every anchor under
/// `anchors` (where given) names a line of the log with that hash. Returns the head.
pub async fn verify(path: &Path, anchors: Option<&Root>) -> Result<Result<Head, BadLine>> {
    let file = File::open(path).with_context(|| format!("opening audit log {}", path.display()))?;
    let mut hashes: Vec<String> = Vec::new();
    let mut prev = GENESIS.to_string();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        let n = i as u64 + 1;
        let bad = |why: String| Ok(Err(BadLine { line: n, why }));
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            return bad("not a JSON line".into());
        };
        if value["seq"].as_u64() != Some(n) {
            return bad(format!("seq is {}, not {n}", value["seq"]));
        }
        if value["prev"].as_str() != Some(prev.as_str()) {
            return bad(
                "its prev is not the hash of the line before: the log was changed at or before it"
                    .into(),
            );
        }
        prev = hash_line(&line);
        hashes.push(prev.clone());
    }
    if let Some(root) = anchors {
        for (seq, hash) in read_anchors(root).await? {
            match hashes.get(seq as usize - 1) {
                Some(h) if *h == hash => {}
                Some(_) => {
                    return Ok(Err(BadLine {
                        line: seq,
                        why: "it does not match its anchor: the log was rewritten".into(),
                    }))
                }
                None => {
                    return Ok(Err(BadLine {
                        line: hashes.len() as u64 + 1,
                        why: format!(
                        "the log ends at line {}, but line {seq} was anchored: lines were removed",
                        hashes.len()
                    ),
                    }))
                }
            }
        }
    }
    match hashes.last() {
        Some(hash) => Ok(Ok(Head {
            seq: hashes.len() as u64,
            hash: hash.clone(),
        })),
        None => bail!("audit log {} is empty", path.display()),
    }
}

/// Every anchor under `root`: (seq, hash), in order.
async fn read_anchors(root: &Root) -> Result<Vec<(u64, String)>> {
    use futures::TryStreamExt;
    let dir = anchor_path(root, 0);
    let prefix = StorePath::from(dir.as_ref().rsplit_once('/').map_or("", |(d, _)| d));
    let objects: Vec<_> = root.store.list(Some(&prefix)).try_collect().await?;
    let mut anchors = Vec::new();
    for meta in objects {
        let bytes = root.store.get(&meta.location).await?.bytes().await?;
        let value: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("anchor {} is not JSON", meta.location))?;
        let (Some(seq), Some(hash)) = (value["seq"].as_u64(), value["hash"].as_str()) else {
            bail!("anchor {} lacks seq or hash", meta.location);
        };
        if seq == 0 {
            bail!("anchor {} has seq 0", meta.location);
        }
        anchors.push((seq, hash.to_string()));
    }
    anchors.sort();
    Ok(anchors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Value {
        json!({"text": text})
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_chain_names_the_first_changed_line_and_anchors_catch_removals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let root = Root::open(
            &dir.path().join("data").display().to_string(),
            &Default::default(),
        )
        .unwrap();
        let log = AuditLog::new(&path);
        let rt = runtime();
        for i in 0..5 {
            let head = log
                .append("statement", fields(&format!("SELECT {i}")))
                .unwrap();
            assert_eq!(head.seq, i + 1);
            if i == 3 {
                rt.block_on(AuditLog::anchor(&root, &head)).unwrap();
            }
        }
        let head = rt.block_on(verify(&path, Some(&root))).unwrap().unwrap();
        assert_eq!(head.seq, 5);

        // One byte flipped in line 3: line 3's text no longer matches line 4's prev.
        let good = std::fs::read(&path).unwrap();
        let mut text = good.clone();
        let third = text
            .split(|&b| b == b'\n')
            .take(2)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        let at = third + text[third..].iter().position(|&b| b == b'S').unwrap();
        text[at] = b's';
        std::fs::write(&path, &text).unwrap();
        let bad = rt.block_on(verify(&path, None)).unwrap().unwrap_err();
        assert_eq!(bad.line, 4, "{bad}");

        // The last two lines removed: the chain holds, the anchor of line 4 does not.
        let lines: Vec<&[u8]> = good.split(|&b| b == b'\n').collect();
        std::fs::write(&path, [lines[..3].join(&b'\n'), b"\n".to_vec()].concat()).unwrap();
        assert!(rt.block_on(verify(&path, None)).unwrap().is_ok());
        let bad = rt
            .block_on(verify(&path, Some(&root)))
            .unwrap()
            .unwrap_err();
        assert!(bad.why.contains("lines were removed"), "{bad}");

        // Appending goes on from the file's head.
        std::fs::write(&path, &good).unwrap();
        assert_eq!(log.append("key", fields("x")).unwrap().seq, 6);
        assert!(rt.block_on(verify(&path, Some(&root))).unwrap().is_ok());
    }
}
