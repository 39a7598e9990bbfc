//! Dead letters of a replay (SPEC §2): `<root>/dead_letter.jsonl`, one JSON object per
//! rejected record with its `reason`, `source` (`file:line`), a `detail` saying what was
//! wrong, and the original `record` text. Spooled to a local temporary file and put into
//! the store whole when the run ends.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Seek, Write};
use std::sync::Arc;

use object_store::buffered::BufWriter as StoreWriter;
use object_store::path::Path;
use object_store::ObjectStore;
use stationflow_schemas::RejectReason;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::sources::Position;

pub struct DeadLetterSink {
    spool: BufWriter<std::fs::File>,
    pub by_reason: BTreeMap<RejectReason, u64>,
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl DeadLetterSink {
    pub fn new() -> std::io::Result<Self> {
        Ok(DeadLetterSink {
            spool: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            by_reason: BTreeMap::new(),
        })
    }

    pub fn write(
        &mut self,
        reason: RejectReason,
        position: &Position,
        detail: &str,
        original: &[u8],
    ) -> std::io::Result<()> {
        *self.by_reason.entry(reason).or_default() += 1;
        let line = serde_json::json!({
            "reason": reason.as_str(),
            "source": position.to_string(),
            "detail": detail,
            "record": String::from_utf8_lossy(original),
        });
        serde_json::to_writer(&mut self.spool, &line)?;
        self.spool.write_all(b"\n")
    }

    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }

    /// Puts the dead letters at `<root>/<name>` (an empty file when none).
    pub fn close(
        self,
        store: &Arc<dyn ObjectStore>,
        root: &Path,
        name: &str,
        runtime: &tokio::runtime::Handle,
    ) -> Result<()> {
        let mut file = self.spool.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let path = root.clone().join(name);
        // In parts, never whole in memory: a run over a damaged archive may dead-letter
        // gigabytes.
        let mut upload = StoreWriter::new(store.clone(), path);
        let written = runtime.block_on(async {
            loop {
                let mut chunk = vec![0; 8 << 20];
                let n = read_full(&mut file, &mut chunk)?;
                if n == 0 {
                    break;
                }
                chunk.truncate(n);
                upload.put(chunk.into()).await?;
            }
            upload.shutdown().await?;
            Ok::<_, Error>(())
        });
        if let Err(e) = written {
            let _ = runtime.block_on(upload.abort());
            return Err(e.context("writing dead letters"));
        }
        Ok(())
    }
}
