#!/usr/bin/env bash
# End-to-end converter benchmark: an upload already in GridFS -> the queue message -> the MP3 in
# GridFS, one converter slot, against the ffmpeg CLI on the same file on local disk, for a 5-minute
# 720p input (moov at the end). Prints the median ratio (goal <= 1.15x) and the scratch bytes the
# converter used. RabbitMQ from scripts/test-deps.sh, a SecantusDB of its own on a temporary
# directory. Options: BENCH_E2E_RUNS (default 3), BENCH_CACHE (inputs, /var/tmp/vidconv-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
command -v ffmpeg >/dev/null || { echo "bench-e2e: ffmpeg CLI missing (scripts/test-deps.sh installs it)" >&2; exit 1; }
eval "$(bash scripts/test-deps.sh)"

cargo build --release -q -p converter --example bench_e2e

source scripts/bench-mongo.sh
bench_mongo e2e

RUST_LOG=${RUST_LOG:-warn} \
BENCH_AMQP_URL="$TEST_AMQP_URL" \
  "$CARGO_TARGET_DIR/release/examples/bench_e2e" --runs "${BENCH_E2E_RUNS:-3}" \
  --cache "${BENCH_CACHE:-/var/tmp/vidconv-bench}"
