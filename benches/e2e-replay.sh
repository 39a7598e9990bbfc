#!/usr/bin/env bash
# End-to-end replay bench: a synthetic plant of 1,000 stations and 10 M records (one per
# station per second, ~918 MB of JSON Lines), replayed by the profile-guided release
# binary (scripts/build-pgo) and by the plain release binary; each prints records/s and
# its peak RSS, pinned to one CPU. Reuses the generated file between runs.
#   benches/e2e-replay.sh            (BENCH_DIR=... to put the data elsewhere;
#                                     BUILDS="pgo" or "release" for one of the two)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-target/e2e-bench}
builds=${BUILDS:-pgo release}
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
if [ ! -f "$dir/gen/signals.jsonl" ]; then
    # Any of the builds generates the same file; the first one asked for is at hand.
    read -r first _ <<<"$builds"
    "$(binary "$first")" generate --stations 1000 --records 10000000 --seed 1 --out "$dir/gen"
fi
# Replays are timed with the file in the page cache, as the figures say. On this VM the
# first read of cached pages after a pause is slow as well (1.8 s for the 918 MB against
# 0.12 s the second time: the host maps the guest's memory back in), so it is read once.
cat "$dir/gen/signals.jsonl" >/dev/null
# The target is for one core: each replay, threads and all, is pinned to the first CPU.
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
for build in $builds; do
    bin=$(binary "$build")
    echo "== $build build ($bin)"
    "${pin[@]}" "$bin" replay "$dir/gen/signals.jsonl" --context "$dir/gen/context.toml" --out "$dir/out" --quiet
done
