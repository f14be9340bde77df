#!/usr/bin/env bash
# Gateway benchmark: upload throughput (MB/s) and the gateway's peak RSS for 10 MiB, 100 MiB and
# 1 GiB streamed uploads, and GET /status with 50 concurrent clients (all on one upload, then each
# on an upload of its own; with one tokio worker, as under the k8s CPU limit, and one per core):
# requests per second and the gateway's CPU time per request (from /proc/<pid>/stat).
# `bench-gateway.sh status` runs only the latter, BENCH_STATUS_SECS seconds each (default 15).
# Runs the release gateway binary against RabbitMQ from scripts/test-deps.sh and a SecantusDB of
# its own on a temporary directory (on disk, short oplog: the shared in-memory test instance
# cannot hold 1 GiB). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
eval "$(bash scripts/test-deps.sh)"

cargo build --release -q -p gateway --bin gateway --example bench_gateway

dir=$(mktemp -d /var/tmp/vidconv-bench-gateway.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.stack/secantus/bin/secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$dir/db" \
  --cache-size 256M --log-level ERROR --oplog-max-entries 200 --oplog-retention-seconds 30 \
  >"$dir/secantus.log" 2>&1 &
mongo_pid=$!
cleanup() { kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done

BENCH_MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true" \
BENCH_AMQP_URL="$TEST_AMQP_URL" \
  "$CARGO_TARGET_DIR/release/examples/bench_gateway" "$CARGO_TARGET_DIR/release/gateway" "$@"
