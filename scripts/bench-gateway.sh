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

source scripts/bench-mongo.sh
bench_mongo gateway

BENCH_AMQP_URL="$TEST_AMQP_URL" \
  "$CARGO_TARGET_DIR/release/examples/bench_gateway" "$CARGO_TARGET_DIR/release/gateway" "$@"
