#!/usr/bin/env bash
# Serving bench: statements/s and latency (p50, p99) of a small roll-up query sent by
# pgbench (Debian's postgresql-contrib) over the PostgreSQL protocol to `stationflow
# serve` (release build) on the replayed sample week, with 32 connections; as a LEEDS
# member and as an admin on the same query, so the cost of the security layer shows; on
# the simple and the extended protocol. Every statement is also an audit line (two
# synced writes), which is part of what is measured.
#   benches/serve-pgbench.sh   (SECONDS_EACH=30 CLIENTS=32 to change the run)
set -euo pipefail
cd "$(dirname "$0")/.."
each=${SECONDS_EACH:-30}
clients=${CLIENTS:-32}
command -v pgbench >/dev/null || {
    echo "pgbench is missing: apt-get install postgresql-contrib" >&2
    exit 1
}
cargo build --release --locked -p stationflow-engine --bin stationflow
bin=$PWD/target/release/stationflow
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" replay replay-data/signals --context replay-data/context.toml --out "$work/out" --quiet
export STATIONFLOW_KEYS=$work/keys.json STATIONFLOW_AUDIT_LOG=$work/audit.jsonl
member=$("$bin" keys create --name leeds-bi --role member --plants LEEDS --expires-in 1d 2>/dev/null)
admin=$("$bin" keys create --name ops --role admin 2>/dev/null)
"$bin" serve --data "$work/out" --pg-listen 127.0.0.1:0 --http-listen off \
    --max-connections 64 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q postgres:// "$work/serve.log" && break; sleep 0.1; done
port=$(sed -n 's|.*postgres://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/serve.log")
cat >"$work/rollup.sql" <<'SQL'
SELECT production_date, oee, availability, performance, quality FROM oee_by_line_day WHERE plant = 'LEEDS' AND line = 'L1' ORDER BY production_date;
SQL
# What every statement costs whatever it asks: key check, two audit lines, session.
echo "SELECT 1;" >"$work/trivial.sql"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "rollup:  $(cat "$work/rollup.sql")"
printf '%-8s %-8s %-9s %10s %9s %9s %9s\n' query who protocol "stmts/s" "p50 ms" "p99 ms" failed
for script in trivial rollup; do
for protocol in simple extended; do
    for who in member admin; do
        if [ "$who" = member ]; then user=leeds-bi key=$member; else user=ops key=$admin; fi
        rm -f "$work"/pgbench_log.*
        (cd "$work" && PGPASSWORD=$key pgbench -n -h 127.0.0.1 -p "$port" -U "$user" \
            -c "$clients" -j 2 -T "$each" -M "$protocol" -f "$script.sql" -l stationflow \
            >"$work/pgbench.out" 2>&1) || { cat "$work/pgbench.out"; exit 1; }
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.out")
        failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")
        # Per-transaction log: the third field is the latency in microseconds.
        read -r p50 p99 < <(cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n |
            awk '{v[NR]=$1} END {printf "%.1f %.1f\n", v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000}')
        printf '%-8s %-8s %-9s %10s %9s %9s %9s\n' "$script" "$who" "$protocol" "$tps" "$p50" "$p99" "${failed:-0}"
    done
done
done
