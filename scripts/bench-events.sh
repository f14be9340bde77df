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

source scripts/bench-mongo.sh
bench_mongo events memory

# Each stream holds a socket in the gateway and one in the benchmark.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
BENCH_AMQP_URL="$TEST_AMQP_URL" \
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}" \
  "$CARGO_TARGET_DIR/release/examples/bench_events" "$CARGO_TARGET_DIR/release/gateway"
