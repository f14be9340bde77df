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

dir=$(mktemp -d /var/tmp/vidconv-bench-e2e.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.stack/secantus/bin/secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$dir/db" \
  --cache-size 256M --log-level ERROR --oplog-max-entries 200 --oplog-retention-seconds 30 \
  >"$dir/secantus.log" 2>&1 &
mongo_pid=$!
cleanup() { kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done

RUST_LOG=${RUST_LOG:-warn} \
BENCH_MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true" \
BENCH_AMQP_URL="$TEST_AMQP_URL" \
  "$CARGO_TARGET_DIR/release/examples/bench_e2e" --runs "${BENCH_E2E_RUNS:-3}" \
  --cache "${BENCH_CACHE:-/var/tmp/vidconv-bench}"
