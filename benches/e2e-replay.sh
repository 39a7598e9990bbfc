#!/usr/bin/env bash
# End-to-end replay bench, on two files of a synthetic plant of 1,000 stations and 10 M
# records, replayed by the profile-guided release binary (scripts/build-pgo) and by the
# plain release binary, each pinned to one CPU:
#   realistic    each station completes a unit every 20–60 s (about 1.5 records a
#                station-minute, so about one window per 1.5 records), 1 % of records
#                held back 10 minutes by their device (revisions): the headline;
#   record-heavy one record per station per second (60 a station-minute, ~918 MB): what
#                the bench measured alone before, a few windows for many records.
# Each is replayed with `--threads T` for each T in THREADS (pinned to the first T CPUs).
# Each row prints records/s, windows/s and peak RSS; then DuckDB (the version the tests
# pin, as many threads, pinned too) reads the same file doing only sums of good, bad and
# count per station-minute into Parquet, with the ratio. Files are reused between runs.
#   benches/e2e-replay.sh   (BENCH_DIR=... for the data; BUILDS="pgo" or "release";
#                            SHAPES="realistic" or "record-heavy"; THREADS="1 2";
#                            ROUNDS=5 for interleaved rounds, a row each, medians yours;
#                            DuckDB from `source scripts/services.sh`, skipped without it)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-target/e2e-bench}
builds=${BUILDS:-pgo release}
shapes=${SHAPES:-realistic record-heavy}
thread_counts=${THREADS:-1 2}
rounds=${ROUNDS:-1}
binary() {
    case $1 in
    pgo) echo target/pgo/stationflow ;;
    release) echo target/release/stationflow ;;
    *) echo "unknown build '$1' in BUILDS (pgo or release)" >&2; return 1 ;;
    esac
}
for build in $builds; do binary "$build" >/dev/null; done
for build in $builds; do
    case $build in
    pgo) scripts/build-pgo ;;
    release) cargo build --release --locked -p stationflow-engine --bin stationflow ;;
    esac
done
read -r first _ <<<"$builds"
generate() {
    local shape=$1 out=$dir/$1
    [ -f "$out/signals.jsonl" ] && return
    case $shape in
    realistic) "$(binary "$first")" generate --stations 1000 --records 10000000 --cycle-s 20-60 \
        --late-percent 1 --late-by-s 600 --seed 1 --out "$out" ;;
    record-heavy) "$(binary "$first")" generate --stations 1000 --records 10000000 --seed 1 \
        --out "$out" ;;
    *) echo "unknown shape '$shape' in SHAPES" >&2; return 1 ;;
    esac
}
# Each run, threads and all, is pinned to the first `threads` CPUs.
pin() {
    if command -v taskset >/dev/null; then taskset -c "0-$(($1 - 1))" "${@:2}"; else "${@:2}"; fi
}
printf '%-13s %-8s %7s %12s %12s %10s\n' shape build threads records/s windows/s peak_MiB
for shape in $shapes; do
    generate "$shape"
    file=$dir/$shape/signals.jsonl
    # Timed with the file in the page cache. On this VM the first read of cached pages
    # after a pause is slow as well (1.8 s for 918 MB against 0.12 s the second time:
    # the host maps the guest's memory back in), so it is read once first.
    cat "$file" >/dev/null
    for threads in $(for _ in $(seq "$rounds"); do echo "$thread_counts"; done); do
        for build in $builds; do
            report=$(pin "$threads" "$(binary "$build")" replay "$file" --threads "$threads" \
                --context "$dir/$shape/context.toml" --out "$dir/$shape/out" --quiet)
            records=$(sed -n 's/^replayed \([0-9]*\) records.* in \([0-9.]*\) s.*/\1 \2/p' <<<"$report")
            windows=$(sed -n 's/^windows \([0-9]*\) rows.*/\1/p' <<<"$report")
            rss=$(sed -n 's/^peak memory (RSS) \([0-9.]*\) MiB/\1/p' <<<"$report")
            read -r n secs <<<"$records"
            awk -v s="$shape" -v b="$build" -v c="$threads" -v n="$n" -v w="$windows" -v t="$secs" \
                -v r="$rss" 'BEGIN { printf "%-13s %-8s %7s %12.0f %12.0f %10s\n", s, b, c, n / t, w / t, r }'
            ours=$(awk -v n="$n" -v t="$secs" 'BEGIN { print n / t }')
        done
        if [ -n "${STATIONFLOW_READERS_PYTHON:-}" ]; then
            duck=$(pin "$threads" "$STATIONFLOW_READERS_PYTHON" - "$file" "$dir/$shape/duckdb.parquet" "$threads" <<'PY'
import sys, time, duckdb
src, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
t = time.perf_counter()
con.execute(f"""COPY (
    SELECT station, date_trunc('minute', ts::TIMESTAMPTZ) AS minute,
        sum(coalesce(production_complete_good, 0)) AS good,
        sum(coalesce(production_complete_bad, 0)) AS bad, count(*) AS records
    FROM read_json('{src}', format = 'newline_delimited', columns = {{
        station: 'VARCHAR', ts: 'VARCHAR', production_complete_good: 'DOUBLE',
        production_complete_bad: 'DOUBLE'}})
    GROUP BY ALL) TO '{out}' (FORMAT parquet)""")
seconds = time.perf_counter() - t
n = con.execute(f"SELECT count(*) FROM read_json('{src}', format = 'newline_delimited', columns = {{station: 'VARCHAR'}})").fetchone()[0]
print(n / seconds)
PY
    )
            awk -v s="$shape" -v d="$duck" -v o="$ours" -v b="$build" -v c="$threads" \
                'BEGIN { printf "%-13s %-8s %7s %12.0f   (stationflow %s / DuckDB: %.2f)\n", s, "duckdb", c, d, b, o / d }'
        fi
    done
done
