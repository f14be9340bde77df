# Sourced by the benchmark scripts: a SecantusDB of the benchmark's own, so that a run neither
# fills nor reads the tests' shared instance, with a short oplog (benchmarks never read it).
# Needs .stack/secantus, which scripts/test-deps.sh installs.

# bench_mongo NAME [memory]: starts it, on disk under a fresh directory in /var/tmp (or in
# memory), waits until it listens, exports BENCH_MONGODB_URI, and stops it and removes the
# directory when the script exits.
bench_mongo() {
  local name=$1 storage port
  BENCH_DIR=$(mktemp -d "/var/tmp/vidconv-bench-$name.XXXXXX")
  storage="$BENCH_DIR/db"
  [ "${2:-}" = memory ] && storage=:memory:
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .stack/secantus/bin/secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$storage" \
    --cache-size 256M --log-level ERROR --oplog-max-entries 200 --oplog-retention-seconds 30 \
    >"$BENCH_DIR/secantus.log" 2>&1 &
  BENCH_MONGO_PID=$!
  trap 'kill "$BENCH_MONGO_PID" 2>/dev/null || true; wait "$BENCH_MONGO_PID" 2>/dev/null || true; rm -rf "$BENCH_DIR"' EXIT
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  export BENCH_MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
}
