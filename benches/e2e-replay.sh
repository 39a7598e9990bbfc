#!/usr/bin/env bash
# End-to-end replay bench: a synthetic plant of 1,000 stations and 10 M records (one per
# station per second, ~918 MB of JSON Lines), replayed by the release binary, which
# prints records/s and its peak RSS. Reuses the generated file between runs.
#   benches/e2e-replay.sh            (BENCH_DIR=... to put the data elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p stationflow-engine
dir=${BENCH_DIR:-target/e2e-bench}
if [ ! -f "$dir/gen/signals.jsonl" ]; then
    target/release/stationflow generate --stations 1000 --records 10000000 --seed 1 --out "$dir/gen"
fi
target/release/stationflow replay "$dir/gen/signals.jsonl" --context "$dir/gen/context.toml" --out "$dir/out" --quiet
