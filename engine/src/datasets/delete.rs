//! Secure deletion: the rows of a plant (a station, a time range) leave every dataset,
//! and a confirmation report says what went, with checksums and a verification query.
//!
//! Each file holding matching rows is deleted (all its rows match) or rewritten without
//! them under the same name (one `put`, so readers see the old or the new file). The
//! report goes under `<root>/_deletions/` as JSON and as text.

use arrow::array::{BooleanArray, RecordBatch};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{decode, encode, partitions, put, read_bytes, remove, sha256_hex, Dataset, RowKeys};
use crate::error::Result;
use crate::query::sql_text;
use crate::sinks::parquet::partition_date;
use crate::store::Root;

/// Which rows go: a plant's, optionally one station's, optionally in `[from, to)`.
#[derive(Debug, Clone, Serialize)]
pub struct Criteria {
    pub plant: String,
    pub station: Option<String>,
    /// Milliseconds since the epoch (UTC), inclusive; on `window_start` / `start`.
    pub from_ms: Option<i64>,
    /// Exclusive.
    pub to_ms: Option<i64>,
}

impl Criteria {
    fn matches(&self, keys: &RowKeys, i: usize) -> bool {
        let t = keys.time.value(i);
        self.station.as_deref().is_none_or(|s| keys.station(i) == s)
            && self.from_ms.is_none_or(|from| t >= from)
            && self.to_ms.is_none_or(|to| t < to)
    }

    /// Whether a partition of UTC day `date` can hold matching rows.
    fn may_hold(&self, date: &str) -> bool {
        self.from_ms
            .is_none_or(|from| date >= partition_date(from).as_str())
            && self
                .to_ms
                .is_none_or(|to| date <= partition_date(to - 1).as_str())
    }

    /// The same criteria as SQL over the `dataset` view.
    fn sql(&self, dataset: Dataset) -> String {
        let time = format!("CAST(\"{}\" AS BIGINT)", dataset.time_column());
        let mut conditions = vec![format!("plant = {}", sql_text(&self.plant))];
        if let Some(s) = &self.station {
            conditions.push(format!("station = {}", sql_text(s)));
        }
        if let Some(from) = self.from_ms {
            conditions.push(format!("{time} >= {from}"));
        }
        if let Some(to) = self.to_ms {
            conditions.push(format!("{time} < {to}"));
        }
        format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            dataset.name(),
            conditions.join(" AND ")
        )
    }
}

/// One object the deletion touched.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectChange {
    pub object: String,
    /// `deleted` (every row matched) or `rewritten` (without the matching rows).
    pub action: &'static str,
    pub sha256_before: String,
    pub sha256_after: Option<String>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows_before: usize,
    pub rows_after: usize,
    pub rows_deleted: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub dataset: &'static str,
    pub sql: String,
    pub matching_rows_remaining: u64,
}

/// The confirmation report (or, in a dry run, what would go).
#[derive(Debug, Clone, Serialize)]
pub struct DeletionReport {
    pub id: String,
    pub requested_at: String,
    pub completed_at: String,
    pub actor: String,
    pub root: String,
    pub dry_run: bool,
    pub criteria: Criteria,
    pub objects: Vec<ObjectChange>,
    pub rows_before: usize,
    pub rows_after: usize,
    pub rows_deleted: usize,
    pub verification: Vec<Verification>,
    pub verified: bool,
}

/// Deletes what `criteria` names (or, with `dry_run`, only finds it) and returns the
/// report; the caller writes it (`write_report`).
pub async fn delete(
    root: &Root,
    criteria: &Criteria,
    actor: &str,
    dry_run: bool,
) -> Result<DeletionReport> {
    let requested = Utc::now();
    let mut objects = Vec::new();
    for dataset in Dataset::ALL {
        for partition in partitions(root, dataset).await? {
            if partition.plant != criteria.plant || !criteria.may_hold(&partition.date) {
                continue;
            }
            for meta in &partition.files {
                if let Some(change) =
                    delete_in_file(root, dataset, &meta.location, criteria, dry_run).await?
                {
                    objects.push(change);
                }
            }
        }
    }
    let verification = if dry_run {
        Vec::new()
    } else {
        // The sums of the days rewritten still hold the deleted rows: computed again
        // from what is left, and the old files removed.
        super::sums::refresh(root).await?;
        verify(root, criteria).await?
    };
    let rows_before = objects.iter().map(|o| o.rows_before).sum();
    let rows_after = objects.iter().map(|o| o.rows_after).sum();
    Ok(DeletionReport {
        id: format!(
            "{}-{}",
            requested.format("%Y%m%dT%H%M%S%.3fZ"),
            &sha256_hex(format!("{criteria:?}{actor}").as_bytes())[..8]
        ),
        requested_at: requested.to_rfc3339_opts(SecondsFormat::Millis, true),
        completed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        actor: actor.to_string(),
        root: root.url.clone(),
        dry_run,
        criteria: criteria.clone(),
        rows_deleted: objects.iter().map(|o| o.rows_deleted).sum(),
        objects,
        rows_before,
        rows_after,
        verified: !dry_run && verification.iter().all(|v| v.matching_rows_remaining == 0),
        verification,
    })
}

async fn delete_in_file(
    root: &Root,
    dataset: Dataset,
    path: &object_store::path::Path,
    criteria: &Criteria,
    dry_run: bool,
) -> Result<Option<ObjectChange>> {
    let bytes = read_bytes(&*root.store, path).await?;
    let sha256_before = sha256_hex(&bytes);
    let bytes_before = bytes.len() as u64;
    let batches = decode(path, bytes)?;
    let mut kept_batches = Vec::new();
    let (mut rows_before, mut rows_deleted) = (0, 0);
    for batch in &batches {
        let keys = RowKeys::of(batch, dataset)?;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(!criteria.matches(&keys, i)))
            .collect();
        rows_before += batch.num_rows();
        rows_deleted += keep.false_count();
        kept_batches.push(arrow::compute::filter_record_batch(batch, &keep)?);
    }
    if rows_deleted == 0 {
        return Ok(None);
    }
    let rows_after = rows_before - rows_deleted;
    let mut change = ObjectChange {
        object: path.to_string(),
        action: if rows_after == 0 {
            "deleted"
        } else {
            "rewritten"
        },
        sha256_before,
        sha256_after: None,
        bytes_before,
        bytes_after: 0,
        rows_before,
        rows_after,
        rows_deleted,
    };
    if rows_after > 0 {
        let kept: Vec<RecordBatch> = kept_batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .collect();
        let bytes = encode(&kept)?;
        change.sha256_after = Some(sha256_hex(&bytes));
        change.bytes_after = bytes.len() as u64;
        if !dry_run {
            put(&*root.store, path, bytes).await?;
        }
    } else if !dry_run {
        remove(&*root.store, path).await?;
    }
    Ok(Some(change))
}

/// Counts matching rows left, through the same SQL a user would run.
async fn verify(root: &Root, criteria: &Criteria) -> Result<Vec<Verification>> {
    use arrow::array::AsArray;
    let session = crate::query::session(root).await?;
    let mut out = Vec::new();
    for dataset in Dataset::ALL {
        let sql = criteria.sql(dataset);
        let batches = session.sql(&sql).await?.collect().await?;
        let remaining = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
            })
            .map(|c| c.value(0))
            .unwrap_or(0);
        out.push(Verification {
            dataset: dataset.name(),
            sql,
            matching_rows_remaining: remaining as u64,
        });
    }
    Ok(out)
}

/// Writes the report as `<root>/_deletions/<id>.json` and `<id>.txt`; returns their paths.
pub async fn write_report(root: &Root, report: &DeletionReport) -> Result<[String; 2]> {
    let base = root.child("_deletions");
    let json = base.clone().join(format!("{}.json", report.id));
    let text = base.join(format!("{}.txt", report.id));
    put(&*root.store, &json, serde_json::to_vec_pretty(report)?).await?;
    put(&*root.store, &text, render(report).into_bytes()).await?;
    Ok([json.to_string(), text.to_string()])
}

/// The report as text a person reads.
pub fn render(r: &DeletionReport) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let c = &r.criteria;
    let time = |ms: Option<i64>| {
        ms.and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
    };
    let _ = writeln!(
        t,
        "{} {}",
        if r.dry_run {
            "DRY RUN: would delete"
        } else {
            "Deletion"
        },
        r.id
    );
    let _ = writeln!(
        t,
        "requested at {} by {}; completed at {}",
        r.requested_at, r.actor, r.completed_at
    );
    let _ = writeln!(t, "root        {}", r.root);
    let _ = writeln!(
        t,
        "criteria    plant {}, station {}, from {}, to {}",
        c.plant,
        c.station.as_deref().unwrap_or("(all)"),
        time(c.from_ms).unwrap_or_else(|| "(start)".into()),
        time(c.to_ms).unwrap_or_else(|| "(end)".into()),
    );
    let _ = writeln!(
        t,
        "rows        {} in the touched objects before, {} after: {} deleted",
        r.rows_before, r.rows_after, r.rows_deleted
    );
    let _ = writeln!(t, "objects     {}", r.objects.len());
    if r.objects.is_empty() {
        let _ = writeln!(
            t,
            "            no row matched the criteria: nothing was changed"
        );
    }
    for o in &r.objects {
        let _ = writeln!(
            t,
            "  {:9} {}\n            sha256 before {} ({} bytes, {} rows)\n            sha256 after  {} ({} bytes, {} rows)",
            o.action,
            o.object,
            o.sha256_before,
            o.bytes_before,
            o.rows_before,
            o.sha256_after.as_deref().unwrap_or("(object removed)"),
            o.bytes_after,
            o.rows_after
        );
    }
    if !r.dry_run {
        let _ = writeln!(t, "verification");
        for v in &r.verification {
            let _ = writeln!(
                t,
                "  {} matching rows remain in {}: {}",
                v.matching_rows_remaining, v.dataset, v.sql
            );
        }
        let _ = writeln!(
            t,
            "result      {}",
            if r.verified {
                "VERIFIED: no matching row remains"
            } else {
                "NOT VERIFIED: matching rows remain"
            }
        );
    }
    t
}
