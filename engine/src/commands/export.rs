//! `stationflow export --plant P --from T1 --to T2 --format csv|parquet --output <path>`:
//! a plant's latest windows, for customers leaving or feeding other systems.

use futures::StreamExt;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use tokio::io::AsyncWriteExt;

use crate::query;
use crate::sinks::parquet::{partition_date, writer_properties};
use crate::store::{Root, StoreSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub plant: String,
    /// Windows starting at or after this instant: RFC 3339 or a UTC day (YYYY-MM-DD).
    #[arg(long)]
    pub from: String,
    /// ... and before this instant (exclusive).
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where the file goes: a local path or s3://bucket/key.
    #[arg(long, short)]
    pub output: String,
    /// The output root to read (a folder, file://, s3://bucket/prefix).
    #[arg(long, default_value = "./stationflow-out")]
    pub data: String,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let from = super::parse_instant(&args.from, "--from")?;
    let to = super::parse_instant(&args.to, "--to")?;
    anyhow::ensure!(from < to, "--from must be before --to");
    let settings = StoreSettings::from_env()?;
    let root = Root::open_existing(&args.data, &settings)?;
    let (dir, file) = match args.output.rsplit_once('/') {
        Some((dir, file)) if !file.is_empty() => (if dir.is_empty() { "/" } else { dir }, file),
        None if !args.output.is_empty() => (".", args.output.as_str()),
        _ => anyhow::bail!("--output {:?} does not name a file", args.output),
    };
    let target = Root::open(dir, &settings)?;
    let runtime = super::runtime()?;
    let rows = runtime.block_on(export(
        &root,
        &args.plant,
        from,
        to,
        args.format,
        &target,
        file,
    ))?;
    super::print(&format!(
        "exported {rows} windows of plant {} to {}{file}\n",
        args.plant, target.url
    ))
}

async fn export(
    root: &Root,
    plant: &str,
    from: i64,
    to: i64,
    format: ExportFormat,
    target: &Root,
    file: &str,
) -> anyhow::Result<u64> {
    let sql = format!(
        "SELECT * EXCEPT (date) FROM station_windows_latest
         WHERE plant = {} AND date >= '{}' AND date <= '{}'
           AND CAST(window_start AS BIGINT) >= {from} AND CAST(window_start AS BIGINT) < {to}
         ORDER BY station, window_start",
        query::sql_text(plant),
        partition_date(from),
        partition_date(to - 1)
    );
    let ctx = query::session(root).await?;
    let df = ctx.sql(&sql).await?;
    let schema = df.schema().inner().clone();
    let mut stream = df.execute_stream().await?;
    let path = target.child(file);
    let out = BufWriter::new(target.store.clone(), path.clone());
    let mut rows = 0u64;
    match format {
        ExportFormat::Parquet => {
            let mut writer =
                AsyncArrowWriter::try_new(out, schema, Some(writer_properties(1 << 20)))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await?;
            }
            writer.close().await?;
        }
        ExportFormat::Csv => {
            let mut out = out;
            let mut header = true;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                let mut bytes = Vec::new();
                arrow::csv::WriterBuilder::new()
                    .with_header(header)
                    .build(&mut bytes)
                    .write(&query::lists_as_text(&batch)?)?;
                header = false;
                out.write_all(&bytes).await?;
            }
            if header {
                // No rows: still a file with the column names.
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                out.write_all(format!("{}\n", names.join(",")).as_bytes())
                    .await?;
            }
            out.shutdown().await?;
        }
    }
    Ok(rows)
}
