#!/usr/bin/env bash
# Event-stream benchmark: MongoDB reads per second caused by N concurrent GET /events streams
# (BENCH_EVENT_STREAMS, default 100,1000,3000), polling (no REDIS_URL) against pushed over Redis.
# Runs the release gateway binary against RabbitMQ from scripts/test-deps.sh, Redis on
# BENCH_REDIS_URL (default redis://127.0.0.1:6379) and a SecantusDB of its own, whose
# serverStatus opcounters count the reads. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
eval "$(bash scripts/test-deps.sh)"

cargo build --release -q -p gateway --bin gateway --example bench_events

dir=$(mktemp -d /var/tmp/vidconv-bench-events.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.stack/secantus/bin/secantusd-py --host 127.0.0.1 --port "$port" --storage-path :memory: \
  --cache-size 256M --log-level ERROR --oplog-max-entries 200 --oplog-retention-seconds 30 \
  >"$dir/secantus.log" 2>&1 &
mongo_pid=$!
cleanup() { kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done

# Each stream holds a socket in the gateway and one in the benchmark.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
BENCH_MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true" \
BENCH_AMQP_URL="$TEST_AMQP_URL" \
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}" \
  "$CARGO_TARGET_DIR/release/examples/bench_events" "$CARGO_TARGET_DIR/release/gateway"
