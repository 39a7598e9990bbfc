//! SQL over the datasets (SPEC §5) with DataFusion: the tables `station_windows` and
//! `downtime_events` (hive partitions `plant=` and `date=` prune files), the views
//! `station_windows_latest` and `downtime_events_latest` (highest revision per key), and
//! roll-ups that divide sums — never averages of ratios.

mod days;
mod views;

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;

use crate::error::{format_err, Error, Result};
use crate::store::Root;
pub use views::{
    limited_session, register_all, register_store, runtime_env, scoped_session, session,
    sums_measures, DEFAULT_MEMORY_MB, ROLLUPS, ROLLUP_MEASURES,
};

/// `text` as a SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs one SQL statement and collects its result.
/// Read-only: DDL (`CREATE EXTERNAL TABLE … LOCATION '/etc/…'`), DML (`INSERT`, `COPY …
/// TO`) and statements (`SET`) are refused, and no table reads a file or URL by name.
pub async fn run(root: &Root, sql: &str) -> Result<Vec<RecordBatch>> {
    run_limited(root, sql, DEFAULT_MEMORY_MB << 20).await
}

/// `run` with a memory pool of `memory_bytes`: a query that needs more fails with
/// "Resources exhausted" rather than taking the machine.
pub async fn run_limited(root: &Root, sql: &str, memory_bytes: usize) -> Result<Vec<RecordBatch>> {
    let df = planned(root, sql, memory_bytes).await?;
    df.collect().await.map_err(|e| plain_error(&e))
}

/// One read-only SQL statement planned over `root`, with a memory pool of
/// `memory_bytes`, ready to run (`collect`, or `write_rows` as the rows come).
pub async fn planned(
    root: &Root,
    sql: &str,
    memory_bytes: usize,
) -> Result<datafusion::dataframe::DataFrame> {
    let ctx = limited_session(root, memory_bytes).await?;
    ctx.sql_with_options(sql, read_only()).await.map_err(|e| {
        let refused = matches!(&e, DataFusionError::Plan(m) if m.contains("not supported"));
        if refused {
            format_err!("queries are read-only: {e}")
        } else {
            plain_error(&e)
        }
    })
}

/// Runs `df` and writes its rows to `out` as CSV or JSON lines batch by batch, so a
/// large result takes the memory of a batch, not of all its rows.
pub async fn write_rows(
    df: datafusion::dataframe::DataFrame,
    format: OutputFormat,
    out: impl std::io::Write,
) -> Result<()> {
    use futures::StreamExt;
    let mut rows = df.execute_stream().await.map_err(|e| plain_error(&e))?;
    let mut writer = RowWriter::new(format, out);
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(|e| plain_error(&e))?;
        writer.write(&batch)?;
    }
    writer.finish()
}

/// A CSV or JSON-lines writer: a CSV header once, before the first rows.
enum RowWriter<W: std::io::Write> {
    Csv(Box<arrow::csv::Writer<W>>),
    Json(arrow::json::LineDelimitedWriter<W>),
}

impl<W: std::io::Write> RowWriter<W> {
    fn new(format: OutputFormat, out: W) -> Self {
        match format {
            OutputFormat::Json => RowWriter::Json(arrow::json::LineDelimitedWriter::new(out)),
            OutputFormat::Csv | OutputFormat::Table => RowWriter::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            )),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            RowWriter::Csv(w) => w.write(&lists_as_text(batch)?)?,
            RowWriter::Json(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let mut out = match self {
            RowWriter::Csv(w) => w.into_inner(),
            RowWriter::Json(mut w) => {
                w.finish()?;
                w.into_inner()
            }
        };
        Ok(out.flush()?)
    }
}

/// DataFusion's error as `plainly` words it, of the class its variant gives.
fn plain_error(e: &DataFusionError) -> Error {
    Error::classed(plainly(e), crate::error::query_class(e))
}

/// A query error as a person should read it: an unknown column is named once with the
/// closest one there is (DataFusion lists every column of the relation, once per
/// layer of its error chain); anything else as DataFusion says it.
pub fn plainly(e: &DataFusionError) -> String {
    use datafusion::common::SchemaError;
    if let DataFusionError::SchemaError(schema, _) = e.find_root() {
        if let SchemaError::FieldNotFound {
            field,
            valid_fields,
        } = schema.as_ref()
        {
            let names: Vec<&str> = valid_fields.iter().map(|c| c.name.as_str()).collect();
            return match closest(&field.name, &names) {
                Some(near) => format!("no column `{}`; did you mean `{near}`?", field.name),
                None => format!("no column `{}`", field.name),
            };
        }
    }
    e.find_root().to_string()
}

/// The name in `names` closest to `typed`: one that holds it (or that it holds), else
/// the fewest edits away if that is under half its length.
fn closest<'a>(typed: &str, names: &[&'a str]) -> Option<&'a str> {
    let typed = typed.to_lowercase();
    let holding = names.iter().copied().filter(|n| {
        let n = n.to_lowercase();
        n.contains(&typed) || typed.contains(&n)
    });
    if let Some(best) = holding.min_by_key(|n| n.len().abs_diff(typed.len())) {
        return Some(best);
    }
    names
        .iter()
        .copied()
        .map(|n| (edits(&typed, &n.to_lowercase()), n))
        .filter(|(d, _)| *d * 2 < typed.chars().count().max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_column_is_named_once_with_the_closest_one() {
        let names = ["station", "downtime_reason", "revision", "good_qty", "oee"];
        assert_eq!(closest("reason", &names), Some("downtime_reason"));
        assert_eq!(closest("good_qtty", &names), Some("good_qty"));
        assert_eq!(closest("Station", &names), Some("station"));
        assert_eq!(closest("xyz", &names), None);
        assert_eq!(edits("kitten", "sitting"), 3);
    }
}

/// What a user's SQL may do: read.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// How `stationflow query` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// CSV has no lists: list columns (`error_codes`) become their items joined with `|`.
pub fn lists_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
    use arrow::datatypes::Field;
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let DataType::List(_) = field.data_type() {
            let list = column.as_list::<i32>();
            let mut text = StringBuilder::new();
            for i in 0..list.len() {
                if list.is_null(i) {
                    text.append_null();
                    continue;
                }
                let items = arrow::compute::cast(&list.value(i), &DataType::Utf8)?;
                let items = items.as_string::<i32>();
                let joined: Vec<&str> = (0..items.len())
                    .filter(|j| !items.is_null(*j))
                    .map(|j| items.value(j))
                    .collect();
                text.append_value(joined.join("|"));
            }
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text.finish()));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    if format == OutputFormat::Table {
        return Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string());
    }
    let mut out = Vec::new();
    let mut writer = RowWriter::new(format, &mut out);
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    Ok(String::from_utf8(out)?)
}
