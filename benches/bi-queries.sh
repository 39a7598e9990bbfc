#!/usr/bin/env bash
# BI-query bench: the queries a dashboard sends, on the replayed output of DAYS days of
# STATIONS stations at a realistic density (a record every 30 s per station, 2 % of
# them held back 10 minutes by their device, so windows get revised), timed with
# `stationflow query` (release build; each run a new process: listing, planning and
# all) and with DuckDB on the same files running the views as they were defined before
# the `window_sums` dataset (ROW_NUMBER over every row read). Median of RUNS warm runs.
#   benches/bi-queries.sh       (DAYS=365 STATIONS=1000 RUNS=5 BENCH_DIR=target/bi-bench)
# Needs DuckDB: run `source scripts/services.sh` first (it installs the pinned one).
set -euo pipefail
cd "$(dirname "$0")/.."
days=${DAYS:-365}
stations=${STATIONS:-1000}
runs=${RUNS:-5}
dir=${BENCH_DIR:-target/bi-bench}/${stations}x${days}d
python=${STATIONFLOW_READERS_PYTHON:?run "source scripts/services.sh" first (DuckDB)}
cargo build --release --locked -p stationflow-engine --bin stationflow
bin=$PWD/target/release/stationflow
if [ ! -f "$dir/out/.done" ]; then
    records=$((stations * days * 2880))
    "$bin" generate --stations "$stations" --records "$records" --interval-ms 30000 \
        --late-percent 2 --late-by-s 600 --seed 1 --out "$dir/gen"
    /usr/bin/time -f "replay: %e s, peak RSS %M KiB" \
        "$bin" replay "$dir/gen/signals.jsonl" --context "$dir/gen/context.toml" \
        --out "$dir/out" --quiet
    rm -f "$dir/gen/signals.jsonl" # tens of GB; the output is what is measured
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
printf '%-36s %14s %14s %8s\n' query stationflow_s duckdb_s rows
for q in "${queries[@]}"; do
    IFS='|' read -r name ours theirs <<<"$q"
    "$bin" query --data "$dir/out" --format csv "$ours" >/dev/null # warm the page cache
    ours_s=$(for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        "$bin" query --data "$dir/out" --format csv "$ours" >"$dir/ours.csv"
        echo $((($(date +%s%N) - start) / 1000000))
    done | median)
    rows=$(($(wc -l <"$dir/ours.csv") - 1))
    theirs_s=$("$python" - "$dir/out" "$theirs" "$runs" <<'PY'
import sys, time, duckdb
root, sql, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
cols = lambda d: f"read_parquet('{root}/{d}/*/*/*.parquet', hive_partitioning = true)"
con.execute(f"""CREATE VIEW latest AS SELECT * EXCLUDE (rn) FROM (SELECT *,
    row_number() OVER (PARTITION BY date, station, window_start ORDER BY revision DESC) AS rn
    FROM {cols('station_windows')}) WHERE rn = 1""")
con.execute(f"""CREATE VIEW events AS SELECT * EXCLUDE (rn) FROM (SELECT *,
    row_number() OVER (PARTITION BY date, station, "start" ORDER BY revision DESC) AS rn
    FROM {cols('downtime_events')}) WHERE rn = 1 AND reason <> 'retracted'""")
con.execute(sql).fetchall()
times = []
for _ in range(runs):
    t = time.perf_counter(); con.execute(sql).fetchall(); times.append(time.perf_counter() - t)
print(sorted(times)[len(times) // 2])
PY
)
    printf '%-36s %14.3f %14.3f %8d\n' "$name" "$(echo "$ours_s" | awk '{print $1 / 1000}')" \
        "$theirs_s" "$rows"
done
