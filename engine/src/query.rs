//! SQL over the datasets (SPEC §5) with DataFusion: the tables `station_windows` and
//! `downtime_events` (hive partitions `plant=` and `date=` prune files), the views
//! `station_windows_latest` and `downtime_events_latest` (highest revision per key), and
//! roll-ups that divide sums — never averages of ratios.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use stationflow_schemas::window::{EVENT_COLUMNS, WINDOW_COLUMNS};

use crate::access::scope::ScopedTable;
use crate::sinks::arrow_rows::{event_schema, window_schema};
use crate::store::commits::{self, CommittedView};
use crate::store::Root;

/// The roll-up views: name, grouping columns, and what they are for.
pub const ROLLUPS: [(&str, &str, &str); 5] = [
    (
        "oee_by_shift",
        "plant, line, station, shift_date, shift",
        "each station's shifts",
    ),
    (
        "oee_by_station_day",
        "plant, line, station, production_date",
        "each station's production days",
    ),
    (
        "oee_by_line_day",
        "plant, line, production_date",
        "each line's production days",
    ),
    (
        "oee_by_plant_day",
        "plant, production_date",
        "each plant's production days",
    ),
    (
        "oee_by_sku_day",
        "plant, sku, production_date",
        "each SKU's production days",
    ),
];

/// The sums a roll-up keeps, and the ratios it derives from them. Performance and OEE
/// use only windows that have an ideal, so output without one does not inflate them.
pub const ROLLUP_MEASURES: &str = "
    SUM(shift_s) AS shift_s, SUM(planned_s) AS planned_s, SUM(planned_stop_s) AS planned_stop_s,
    SUM(schedule_loss_s) AS schedule_loss_s, SUM(productive_s) AS productive_s, SUM(run_s) AS run_s,
    SUM(downtime_s) AS downtime_s, SUM(no_data_s) AS no_data_s,
    SUM(good_qty) AS good_qty, SUM(reject_qty) AS reject_qty, SUM(total_qty) AS total_qty,
    SUM(ideal_qty) AS ideal_qty, SUM(target_qty) AS target_qty,
    SUM(productive_s) / NULLIF(SUM(shift_s), 0) AS utilisation,
    SUM(run_s) / NULLIF(SUM(planned_s), 0) AS availability,
    SUM(CASE WHEN target_qty IS NOT NULL THEN total_qty END) / NULLIF(SUM(target_qty), 0) AS performance,
    SUM(good_qty) / NULLIF(SUM(total_qty), 0) AS quality,
    SUM(CASE WHEN ideal_qty IS NOT NULL THEN good_qty END) / NULLIF(SUM(ideal_qty), 0) AS oee,
    SUM(availability_loss_s) AS availability_loss_s, SUM(performance_loss_s) AS performance_loss_s,
    SUM(quality_loss_s) AS quality_loss_s, SUM(availability_loss_cost) AS availability_loss_cost,
    SUM(performance_loss_cost) AS performance_loss_cost, SUM(quality_loss_cost) AS quality_loss_cost,
    SUM(loss_cost) AS loss_cost, SUM(schedule_loss_cost) AS schedule_loss_cost,
    SUM(planned_stop_cost) AS planned_stop_cost, MAX(currency) AS currency,
    SUM(energy_kwh) AS energy_kwh, SUM(event_count) AS event_count";

fn without(schema: &SchemaRef, column: &str) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != column)
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

async fn register_dataset(
    ctx: &SessionContext,
    root: &Root,
    dataset: &str,
    schema: SchemaRef,
    scope: Option<&Arc<[String]>>,
) -> anyhow::Result<()> {
    // `plant` comes from the partition path (so filters on it prune files); the copy
    // inside each file is left out of the table schema.
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("plant".to_string(), DataType::Utf8),
            ("date".to_string(), DataType::Utf8),
        ]);
    let url = ListingTableUrl::parse(format!("{}{dataset}/", root.url))?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(without(&schema, "plant"));
    let table: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
    let table = match scope {
        Some(plants) => Arc::new(ScopedTable::new(table, plants.clone())),
        None => table,
    };
    // Registered again when a server's session is refreshed.
    let name = format!("{dataset}_files");
    ctx.deregister_table(&name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

/// A session with every table and view registered over the datasets at `root`.
pub async fn session(root: &Root) -> anyhow::Result<SessionContext> {
    scoped_session(root, None).await
}

/// `session`, its rows limited to the plants of `scope` where one is given (a member's:
/// `access::scope`); every view reads the scoped tables.
pub async fn scoped_session(
    root: &Root,
    scope: Option<Arc<[String]>>,
) -> anyhow::Result<SessionContext> {
    register_all(SessionContext::new(), root, scope).await
}

/// Registers every table and view of `session` in `ctx` (a context built with the
/// caller's limits: `serve`'s memory pool).
pub async fn register_all(
    ctx: SessionContext,
    root: &Root,
    scope: Option<Arc<[String]>>,
) -> anyhow::Result<SessionContext> {
    register_store(&ctx, root).await?;
    if let Some(dir) = &root.local {
        for d in ["station_windows", "downtime_events"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
    }
    let scope = scope.as_ref();
    register_dataset(&ctx, root, "station_windows", window_schema(), scope).await?;
    register_dataset(&ctx, root, "downtime_events", event_schema(), scope).await?;
    let window_cols = WINDOW_COLUMNS.join(", ");
    let quoted_event_cols = EVENT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ");
    // `date` (the UTC day of `window_start` / `start`, so every revision of a key is in
    // the same one) leads the partitioning of the `_latest` views: a filter on it passes
    // the window function and prunes folders.
    let views = [
        format!("CREATE OR REPLACE VIEW station_windows AS SELECT {window_cols}, date FROM station_windows_files"),
        format!(
            "CREATE OR REPLACE VIEW station_windows_latest AS SELECT {window_cols}, date FROM (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, window_start ORDER BY revision DESC) AS rn
                FROM station_windows) WHERE rn = 1"
        ),
        format!("CREATE OR REPLACE VIEW downtime_events AS SELECT {quoted_event_cols}, date FROM downtime_events_files"),
        format!(
            "CREATE OR REPLACE VIEW downtime_events_latest AS SELECT {quoted_event_cols}, date FROM (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY date, station, \"start\" ORDER BY revision DESC) AS rn
                FROM downtime_events) WHERE rn = 1 AND reason <> 'retracted'"
        ),
    ];
    for sql in views {
        ctx.sql(&sql).await?;
    }
    for (name, keys, _) in ROLLUPS {
        ctx.sql(&format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {keys}, {ROLLUP_MEASURES} FROM station_windows_latest GROUP BY {keys}"
        ))
        .await?;
    }
    Ok(ctx)
}

/// Registers `root`'s store in `ctx` as it is now: live output shows once committed,
/// never part of an epoch (store::commits). Tables list their files at each scan, so this
/// is all a long-lived session needs to see what landed since.
pub async fn register_store(ctx: &SessionContext, root: &Root) -> anyhow::Result<()> {
    let url = url::Url::parse(&root.url)?;
    let commits = commits::load(&*root.store, &root.prefix).await?;
    ctx.register_object_store(
        &url,
        Arc::new(CommittedView::new(root.store.clone(), commits)),
    );
    Ok(())
}

/// `text` as a SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs one SQL statement and collects its result.
/// Read-only: DDL (`CREATE EXTERNAL TABLE … LOCATION '/etc/…'`), DML (`INSERT`, `COPY …
/// TO`) and statements (`SET`) are refused, and no table reads a file or URL by name.
pub async fn run(root: &Root, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let ctx = session(root).await?;
    let df = ctx.sql_with_options(sql, read_only()).await.map_err(|e| {
        let refused = matches!(&e, DataFusionError::Plan(m) if m.contains("not supported"));
        if refused {
            anyhow::anyhow!("queries are read-only: {e}")
        } else {
            anyhow::anyhow!(plainly(&e))
        }
    })?;
    df.collect().await.map_err(|e| anyhow::anyhow!(plainly(&e)))
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
pub fn lists_as_text(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
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

pub fn render(batches: &[RecordBatch], format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Table => arrow::util::pretty::pretty_format_batches(batches)?.to_string(),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(&lists_as_text(b)?)?;
                }
            }
            String::from_utf8(out)?
        }
        OutputFormat::Json => {
            let mut out = Vec::new();
            {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            String::from_utf8(out)?
        }
    })
}
