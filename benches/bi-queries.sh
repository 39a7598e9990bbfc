#!/usr/bin/env bash
# BI-query bench: the queries a dashboard sends, on the replayed output of DAYS days of
# STATIONS stations at a realistic density (a record every 30 s per station, 2 % of
# them held back 10 minutes by their device, so windows get revised), timed with
# `stationflow query` (release build; each run a new process: listing, planning and
# all) and with DuckDB on the same files running the views as they were defined before
# the `window_sums` dataset (ROW_NUMBER over every row read): a new process each run as
# ours, and warm in one connection. Medians of RUNS runs (DUCKDB_RUNS for DuckDB: over
# a year its roll-ups take minutes a run), page cache warm.
#   benches/bi-queries.sh       (DAYS=365 STATIONS=1000 RUNS=5 DUCKDB_RUNS=1
#                                DUCKDB_WARM=0 to skip the warm runs, QUERIES=1,3
#                                for some of the queries, BENCH_DIR=target/bi-bench)
# Needs DuckDB: run `source scripts/services.sh` first (it installs the pinned one).
set -euo pipefail
cd "$(dirname "$0")/.."
days=${DAYS:-365}
stations=${STATIONS:-1000}
runs=${RUNS:-5}
duckdb_runs=${DUCKDB_RUNS:-$runs}
duckdb_warm=${DUCKDB_WARM:-1}
only=${QUERIES:-}
dir=${BENCH_DIR:-target/bi-bench}/${stations}x${days}d
python=${STATIONFLOW_READERS_PYTHON:?run "source scripts/services.sh" first (DuckDB)}
cargo build --release --locked -p stationflow-engine --bin stationflow
bin=$PWD/target/release/stationflow
if [ ! -f "$dir/out/.done" ]; then
    records=$((stations * days * 2880))
    # A year is a billion records, ~96 GB of JSON Lines: the generator writes into a
    # pipe that the replay reads, so the signals never land on disk.
    # The context depends only on the stations: written whole first by a run of no records.
    rm -rf "$dir/gen" "$dir/plant" "$dir/out"
    "$bin" generate --stations "$stations" --records 0 --out "$dir/plant"
    mkdir -p "$dir/gen"
    mkfifo "$dir/gen/signals.jsonl"
    "$bin" generate --stations "$stations" --records "$records" --interval-ms 30000 \
        --late-percent 2 --late-by-s 600 --seed 1 --out "$dir/gen" &
    generator=$!
    # The generator's history starts on 2026-03-02: a year of it runs past today, and
    # records ahead of the wall clock would be dead letters (future_ts).
    /usr/bin/time -f "replay: %e s, peak RSS %M KiB" \
        "$bin" replay "$dir/gen/signals.jsonl" --context "$dir/plant/context.toml" \
        --out "$dir/out" --quiet --max-clock-skew-s $((2 * 366 * 86400))
    wait "$generator"
    touch "$dir/out/.done"
fi
du -sh "$dir/out/station_windows" "$dir/out/window_sums" "$dir/out/downtime_events"

last=$("$bin" query --data "$dir/out" --format csv \
    "SELECT CAST(max(window_start) AS VARCHAR) FROM station_windows" | tail -1)
last_day=${last:0:10}
month_from=$(date -u -d "$last_day - 30 days" +%F)
week_from=$(date -u -d "$last_day - 7 days" +%F)
stamp=${last%Z}
hour_from=$(date -u -d "${stamp/T/ } UTC - 60 minutes" +%FT%T)
echo "data up to $last; month from $month_from, week from $week_from, hour from $hour_from"

# name|stationflow SQL|DuckDB SQL over today's definitions (`latest` and `events` below)
queries=(
    "plant-day OEE, a month|SELECT plant, production_date, availability, performance, quality, oee FROM oee_by_plant_day WHERE production_date >= DATE '$month_from' ORDER BY 1, 2|SELECT plant, production_date, sum(run_s) / sum(planned_s), sum(CASE WHEN target_qty IS NOT NULL THEN total_qty END) / sum(target_qty), sum(good_qty) / sum(total_qty), sum(CASE WHEN ideal_qty IS NOT NULL THEN good_qty END) / sum(ideal_qty) FROM latest WHERE production_date >= DATE '$month_from' GROUP BY 1, 2 ORDER BY 1, 2"
    "line-shift OEE, a week|SELECT shift_date, shift, sum(good_qty_with_ideal) / sum(ideal_qty) AS oee FROM window_sums WHERE plant = 'LDN' AND line = 'LDN-L1' AND shift_date >= DATE '$week_from' GROUP BY 1, 2 ORDER BY 1, 2|SELECT shift_date, shift, sum(CASE WHEN ideal_qty IS NOT NULL THEN good_qty END) / sum(ideal_qty) FROM latest WHERE plant = 'LDN' AND line = 'LDN-L1' AND shift_date >= DATE '$week_from' GROUP BY 1, 2 ORDER BY 1, 2"
    "loss Pareto by reason, a month|SELECT reason, count(*) AS stops, sum(duration_s) AS seconds FROM downtime_events_latest WHERE date >= '$month_from' GROUP BY reason ORDER BY seconds DESC|SELECT reason, count(*), sum(duration_s) AS seconds FROM events WHERE date >= '$month_from' GROUP BY reason ORDER BY seconds DESC"
    "latest 60 minutes, every station|SELECT station, window_start, good_qty, oee FROM station_windows_latest WHERE window_start >= TIMESTAMP '$hour_from' ORDER BY station, window_start|SELECT station, window_start, good_qty, oee FROM latest WHERE window_start >= TIMESTAMP '$hour_from' ORDER BY station, window_start"
)

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# Milliseconds a command takes, median of RUNS.
time_ms() {
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        "$@" >"$dir/last.csv"
        echo $((($(date +%s%N) - start) / 1000000))
    done | median
}
cat >"$dir/duckdb_views.py" <<'PY'
# DuckDB over the same files with the views as they were before window_sums.
#   duckdb_views.py <root> <sql> warm <runs>: median seconds of runs in one connection
#   duckdb_views.py <root> <sql> once: the query once (timed from outside, like ours)
import sys, time, duckdb
root, sql, mode = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
files = lambda d: f"read_parquet('{root}/{d}/*/*/*.parquet', hive_partitioning = true)"
con.execute(f"""CREATE VIEW latest AS SELECT * EXCLUDE (rn) FROM (SELECT *,
    row_number() OVER (PARTITION BY date, station, window_start ORDER BY revision DESC) AS rn
    FROM {files('station_windows')}) WHERE rn = 1""")
con.execute(f"""CREATE VIEW events AS SELECT * EXCLUDE (rn) FROM (SELECT *,
    row_number() OVER (PARTITION BY date, station, "start" ORDER BY revision DESC) AS rn
    FROM {files('downtime_events')}) WHERE rn = 1 AND reason <> 'retracted'""")
if mode == "once":
    con.execute(sql).fetchall()
    sys.exit()
con.execute(sql).fetchall()
times = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter(); con.execute(sql).fetchall(); times.append(time.perf_counter() - t)
print(sorted(times)[len(times) // 2])
PY
seconds() { awk '{printf "%.3f", $1 / 1000}'; }
echo "stationflow: a new \`stationflow query\` process each run (listing, planning, output);"
echo "DuckDB: a new Python process each run (connect, views, query), and warm in one connection"
printf '%-34s %12s %14s %12s %7s\n' query stationflow duckdb_process duckdb_warm rows
n=0
for q in "${queries[@]}"; do
    n=$((n + 1))
    if [ -n "$only" ] && [[ ",$only," != *",$n,"* ]]; then continue; fi
    IFS='|' read -r name ours theirs <<<"$q"
    "$bin" query --data "$dir/out" --format csv "$ours" >/dev/null # warm the page cache
    ours_s=$(time_ms "$bin" query --data "$dir/out" --format csv "$ours" | seconds)
    rows=$(($(wc -l <"$dir/last.csv") - 1))
    cold_s=$(runs=$duckdb_runs time_ms "$python" "$dir/duckdb_views.py" "$dir/out" "$theirs" once | seconds)
    warm_s=-
    if [ "$duckdb_warm" != 0 ]; then
        warm_s=$("$python" "$dir/duckdb_views.py" "$dir/out" "$theirs" warm "$duckdb_runs")
        warm_s=$(printf '%.3f' "$warm_s")
    fi
    printf '%-34s %12s %14s %12s %7d\n' "$name" "$ours_s" "$cold_s" "$warm_s" "$rows"
done
