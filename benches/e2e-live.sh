#!/usr/bin/env bash
# End-to-end live bench through the broker: a synthetic plant of 1,000 stations
# (`generate`, one record per station per second), on a tansu broker started here
# (in memory, as in the tests), four signal partitions.
#   1. the broker alone: `publish` of every record, as fast as the broker acknowledges;
#   2. `stationflow run` on that backlog: records/s from start until every record is
#      read, and the window emit latency (from the record that let a window close to
#      the window's first emission) the engine logs when it stops;
#   3. `stationflow run` while `publish --rate $RATE` feeds it: whether it keeps up.
#   benches/e2e-live.sh      (RECORDS=3000000 RATE=300000 BENCH_DIR=target/e2e-live)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh
cargo build --release -p stationflow-engine
bin=$PWD/target/release/stationflow
records=${RECORDS:-3000000}
rate=${RATE:-300000}
dir=${BENCH_DIR:-target/e2e-live}
mkdir -p "$dir"
gen=$dir/gen-$records
if [ ! -f "$gen/signals.jsonl" ]; then
    "$bin" generate --stations 1000 --records "$records" --seed 1 --out "$gen"
fi
: > "$dir/empty.jsonl"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# A fresh broker with the engine's topics, at $broker. (Functions that start processes
# set globals: a command substitution would wait for the process's stdout to close.)
start_broker() {
    local port; port=$(free_port)
    "$STATIONFLOW_TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ > "$dir/tansu-$port.log" 2>&1 &
    pids+=($!)
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
    for t in signals station.windows station.alerts signals.dlq; do
        "$bin" publish "$dir/empty.jsonl" --topic "$t" --create-partitions 4 \
            --brokers "127.0.0.1:$port" > /dev/null
    done
    broker=127.0.0.1:$port
}

# Starts the engine against broker $1 with output under $2, metrics at $metrics.
start_engine() {
    metrics=127.0.0.1:$(free_port)
    rm -rf "$2"; mkdir -p "$2"
    cat > "$2/stationflow.toml" <<TOML
[kafka]
brokers = "$1"
group_id = "bench"
session_timeout_ms = 6000
[context]
file = "$gen/context.toml"
[output]
root = "$2/out"
[metrics]
listen = "$metrics"
TOML
    STATIONFLOW_LOG=info "$bin" run --config "$2/stationflow.toml" > /dev/null 2> "$2/engine.log" &
    engine=$!
    pids+=("$engine")
}

records_in() { curl -s "http://$1/metrics" | awk '/^stationflow_records_in_total/ { print $2 }'; }

# Waits until the engine at metrics address $1 has read $2 records; prints the time.
wait_for_records() {
    until [ "$(records_in "$1" || echo 0)" -ge "$2" ] 2>/dev/null; do sleep 0.2; done
    now
}

stop_engine() {
    kill -TERM "$engine"; wait "$engine" || true
    grep -o 'window emit latency.*' "$1/engine.log" | sed 's/\x1b\[[0-9;]*m//g'
    echo "peak RSS: $(grep VmHWM "$1/rss" 2>/dev/null | awk '{print $2/1024 " MB"}')"
}

watch_rss() {
    while kill -0 "$engine" 2>/dev/null; do
        cp "/proc/$engine/status" "$1/rss" 2>/dev/null || true
        sleep 1
    done > /dev/null &
}

echo "== 1. the broker alone: publish $records records"
start_broker
t0=$(now)
"$bin" publish "$gen/signals.jsonl" --topic signals --brokers "$broker" > /dev/null
t1=$(now)
python3 -c "print(f'publish: {$records/($t1-$t0):,.0f} records/s ({$t1-$t0:.1f} s)')"

echo "== 2. stationflow run on the backlog"
start_engine "$broker" "$dir/backlog"
watch_rss "$dir/backlog"
t0=$(wait_for_records "$metrics" 1)
t1=$(wait_for_records "$metrics" "$records")
python3 -c "print(f'run: {$records/($t1-$t0):,.0f} records/s ({$t1-$t0:.1f} s from its first record to its last)')"
stop_engine "$dir/backlog"

echo "== 3. stationflow run while publish --rate $rate feeds it"
start_broker
start_engine "$broker" "$dir/paced"
watch_rss "$dir/paced"
until records_in "$metrics" > /dev/null 2>&1; do sleep 0.1; done
sleep 8 # the group join
t0=$(now)
"$bin" publish "$gen/signals.jsonl" --topic signals --brokers "$broker" --rate "$rate" > /dev/null
t1=$(now)
t2=$(wait_for_records "$metrics" "$records")
python3 -c "print(f'publish at --rate $rate: {$records/($t1-$t0):,.0f} records/s; engine done {$t2-$t1:.1f} s after the last record was acknowledged, {$records/($t2-$t0):,.0f} records/s overall')"
stop_engine "$dir/paced"
