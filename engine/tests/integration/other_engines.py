"""Reads a replay's output with two other engines, pyarrow and DuckDB, as a BI user would
(hive partitioning, no schema given) and prints what they see as JSON on stdout, for
`other_engines.rs` to compare with SPEC §5 and with stationflow's own answers.

usage: other_engines.py <output root>
"""

import json
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

DATASETS = ["station_windows", "downtime_events"]


def pyarrow_view(root, name):
    dataset = ds.dataset(f"{root}/{name}", format="parquet", partitioning="hive")
    table = dataset.to_table()
    # Every column chunk of every row group: statistics with a null count; min and max
    # too unless the chunk holds only nulls.
    chunks, without_stats, without_min_max = 0, set(), set()
    for path in dataset.files:
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                chunks += 1
                stats = chunk.statistics
                if stats is None or not stats.has_null_count:
                    without_stats.add(chunk.path_in_schema)
                elif not stats.has_min_max and stats.null_count < chunk.num_values:
                    without_min_max.add(chunk.path_in_schema)
    folders = sorted({path[len(root) + 1 :].rsplit("/", 1)[0] for path in dataset.files})
    return {
        "fields": [[f.name, str(f.type)] for f in dataset.schema],
        "rows": table.num_rows,
        "files": len(dataset.files),
        "folders": folders,
        "chunks": chunks,
        "without_stats": sorted(without_stats),
        "without_min_max": sorted(without_min_max),
    }


def duckdb_view(root):
    con = duckdb.connect()

    def scan(name):
        return f"read_parquet('{root}/{name}/*/*/*.parquet', hive_partitioning = true)"

    windows, events = scan("station_windows"), scan("downtime_events")
    types = con.execute(f"DESCRIBE SELECT * FROM {windows}").fetchall()
    by_plant = con.execute(
        f"""SELECT plant, COUNT(*), SUM(good_qty), SUM(run_s), SUM(loss_cost)
            FROM {windows} GROUP BY plant ORDER BY plant"""
    ).fetchall()
    latest = con.execute(
        f"""SELECT COUNT(*), SUM(good_qty) FROM (
              SELECT good_qty FROM {windows}
              QUALIFY revision = MAX(revision) OVER (PARTITION BY station, window_start))"""
    ).fetchone()
    pruned = con.execute(
        f"""SELECT COUNT(*) FROM {windows}
            WHERE plant = 'LEEDS' AND date = DATE '2026-03-03'"""
    ).fetchone()
    event_rows = con.execute(f"SELECT COUNT(*), SUM(downtime_s) FROM {events}").fetchone()
    return {
        "types": [[row[0], row[1]] for row in types],
        "by_plant": [list(row) for row in by_plant],
        "latest": list(latest),
        "leeds_2026_03_03": pruned[0],
        "events": list(event_rows),
    }


def main():
    root = sys.argv[1].rstrip("/")
    seen = {"pyarrow": {name: pyarrow_view(root, name) for name in DATASETS}}
    seen["duckdb"] = duckdb_view(root)
    json.dump(seen, sys.stdout, default=str)


if __name__ == "__main__":
    main()
