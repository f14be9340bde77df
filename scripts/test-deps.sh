#!/usr/bin/env bash
# Makes sure everything the Rust tests talk to is installed and running on this machine:
# system packages (FFmpeg dev libs, clang), PostgreSQL on 127.0.0.1:5432, RabbitMQ on
# 127.0.0.1:5672, Redis on 127.0.0.1:6379 and the SecantusDB MongoDB stand-in on
# 127.0.0.1:${TEST_MONGO_PORT:-27018}.
# Idempotent: a second run only checks. Prints the environment the tests read.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.stack/test
mkdir -p "$STATE"
TEST_MONGO_PORT=${TEST_MONGO_PORT:-27018}

log() { echo "test-deps: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
need_pkgs() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 what=$2 i
  for i in $(seq 1 120); do port_open "$port" && return 0; sleep 0.5; done
  log "$what did not open port $port"; return 1
}

need_pkgs clang libclang-dev pkg-config libavcodec-dev libavformat-dev libavutil-dev \
  libswresample-dev libavfilter-dev libavdevice-dev libswscale-dev ffmpeg \
  python3-venv postgresql rabbitmq-server redis-server

# PostgreSQL: the machine's cluster; trust auth on 127.0.0.1 is set up when we install it.
if ! port_open 5432; then
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    log "allowing trust auth from 127.0.0.1 in $hba (test machine)"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  wait_port 5432 PostgreSQL
fi

if ! port_open 5672; then
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached
  wait_port 5672 RabbitMQ
  for _ in $(seq 1 60); do as_root rabbitmqctl await_startup >/dev/null 2>&1 && break; sleep 1; done
fi

# Redis: nothing persisted; each test writes under a key prefix of its own.
if ! port_open 6379; then
  log "starting Redis"
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes \
    --logfile "$STATE/redis.log" --pidfile "$STATE/redis.pid"
  wait_port 6379 Redis
fi

# SecantusDB (GPL, beta): its own process, never linked into our binaries.
if [ ! -x "$ROOT/.stack/secantus/bin/secantusd-py" ]; then
  log "installing SecantusDB into .stack/secantus"
  python3 -m venv "$ROOT/.stack/secantus"
  "$ROOT/.stack/secantus/bin/pip" install -q 'SecantusDB==0.7.0b3'
fi
if ! port_open "$TEST_MONGO_PORT"; then
  # The stand-in keeps every write in its oplog for an hour by default, which fills its in-memory
  # cache after a few test runs (WT_CACHE_FULL): bound the oplog, tests never read it.
  log "starting SecantusDB on $TEST_MONGO_PORT (in memory)"
  nohup "$ROOT/.stack/secantus/bin/secantusd-py" --host 127.0.0.1 --port "$TEST_MONGO_PORT" \
    --storage-path :memory: --cache-size 1G --log-level WARNING \
    --oplog-max-entries 1000 --oplog-retention-seconds 60 \
    >"$STATE/secantus.log" 2>&1 &
  echo $! >"$STATE/secantus.pid"
  wait_port "$TEST_MONGO_PORT" SecantusDB
fi

cat <<ENV
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export TEST_AMQP_URL=${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
export TEST_MONGODB_URI=${TEST_MONGODB_URI:-mongodb://127.0.0.1:$TEST_MONGO_PORT/?directConnection=true}
ENV
