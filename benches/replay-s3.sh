#!/usr/bin/env bash
# Replay to S3 versus to a local folder, on the same data, then compaction of the S3
# output: a synthetic plant (RECORDS records, 1,000 stations by default) replayed by the
# release binary into a folder and into a bucket of a SeaweedFS server this script
# starts on 127.0.0.1 (installed by scripts/services.sh), then `compact` on the bucket.
#   benches/replay-s3.sh   (RECORDS=10000000 STATIONS=1000 INTERVAL_MS=1000 BENCH_DIR=... to change;
#                           INTERVAL_MS=60000 makes every record a window: output-heavy)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh
cargo build --release -p stationflow-engine
records=${RECORDS:-10000000}
stations=${STATIONS:-1000}
interval=${INTERVAL_MS:-1000}
dir=${BENCH_DIR:-target/s3-bench}
gen="$dir/gen-$stations-$records-$interval"
if [ ! -f "$gen/signals.jsonl" ]; then
    target/release/stationflow generate --stations "$stations" --records "$records" \
        --interval-ms "$interval" --seed 1 --out "$gen"
fi

weed_dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
cat > "$weed_dir/s3.json" <<'JSON'
{"identities":[{"name":"bench","credentials":[{"accessKey":"benchkey","secretKey":"benchsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
mkdir "$weed_dir/data"
args=()
for i in 0 1 2 3 4 5 6 7; do args+=("$((port + i))"); done
"$STATIONFLOW_WEED" mini -dir="$weed_dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${args[0]}" -master.port.grpc="${args[1]}" -volume.port="${args[2]}" \
    -volume.port.grpc="${args[3]}" -filer.port="${args[4]}" -filer.port.grpc="${args[5]}" \
    -s3.port="${args[6]}" -s3.port.grpc="${args[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$weed_dir/s3.json" -bucket=stationflow-bench -webdav=false -admin.ui=false \
    -master.telemetry=false > "$weed_dir/weed.log" 2>&1 &
weed_pid=$!
trap 'kill $weed_pid 2>/dev/null; sleep 3; kill -9 $weed_pid 2>/dev/null; rm -rf "$weed_dir"' EXIT
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:${args[6]}" AWS_ALLOW_HTTP=true
for _ in $(seq 1 100); do
    target/release/stationflow query "SELECT 1" --data s3://stationflow-bench/ready >/dev/null 2>&1 && break
    sleep 0.3
done

echo "== replay to a local folder"
target/release/stationflow replay "$gen/signals.jsonl" --context "$gen/context.toml" --out "$dir/out" --quiet
echo "== replay to S3 (SeaweedFS on 127.0.0.1)"
target/release/stationflow replay "$gen/signals.jsonl" --context "$gen/context.toml" --out s3://stationflow-bench/out --quiet
echo "== compaction of the S3 output"
target/release/stationflow compact --data s3://stationflow-bench/out --before 2100-01-01 | tail -3
