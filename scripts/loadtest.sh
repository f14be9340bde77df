#!/usr/bin/env bash
# `make loadtest`: locust (pinned below, installed into .stack/locust) drives a mix of people
# registering, logging in, uploading small videos made here with the ffmpeg CLI, following them
# on /events until completed and downloading the MP3 (scripts/loadtest/locustfile.py), for a
# fixed time. Prints uploads and conversions per minute, latency percentiles per endpoint, every
# error, and the CPU each service used; exits non-zero on any error.
#
# By default it starts a stack of its own with scripts/stack.sh in .stack/loadtest, on ports of
# its own (32xxx), and stops it afterwards. Every simulated person registers from 127.0.0.1, more
# than auth's REGISTER_MAX_PER_IP (20 an hour per address) allows, so that stack runs with
# REGISTER_MAX_PER_IP=0 (no registration limit); the login limits count failures only, and the
# load test never fails a login, so they stay as they are. `make up` is never changed.
#
# Settings (environment; see docs/capacity.md):
#   LOADTEST_DURATION       how long the load runs, locust's --run-time (default 2m)
#   LOADTEST_USERS          simulated people at once (default 10)
#   LOADTEST_SPAWN_RATE     people started per second (default 2)
#   LOADTEST_VIDEO_SECONDS  lengths of the test videos, space-separated (default "5 8 10")
#   LOADTEST_URL            an already running gateway API instead of a stack of its own, e.g.
#                           http://localhost:30002 of `make up`; that stack must allow the
#                           registrations (start it with REGISTER_MAX_PER_IP=0)
#   LOADTEST_STACK_DIR      the stack whose processes' CPU is measured (default: the own stack,
#                           or .stack with LOADTEST_URL)
#   LOADTEST_STACK_PROFILE  build of the own stack (default release: the figures are the
#                           production build's)
#   LOADTEST_REPLICAS       STACK_REPLICAS of the own stack (default 1)
#   LOADTEST_KEEP_STACK     1: leave the own stack running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}

LOCUST_VERSION=2.47.0
VENV=$ROOT/.stack/locust
DURATION=${LOADTEST_DURATION:-2m}
USERS=${LOADTEST_USERS:-10}
SPAWN_RATE=${LOADTEST_SPAWN_RATE:-2}
VIDEO_SECONDS=${LOADTEST_VIDEO_SECONDS:-5 8 10}
WORK=$ROOT/.stack/loadtest-work
log() { echo "loadtest: $*" >&2; }

if ! "$VENV/bin/locust" --version 2>/dev/null | grep -qF "$LOCUST_VERSION"; then
  log "installing locust $LOCUST_VERSION into .stack/locust"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "locust==$LOCUST_VERSION"
fi
command -v ffmpeg >/dev/null || {
  log "installing Debian's ffmpeg"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
}

# The videos: H.264 320x240 at 25 fps with an AAC tone, like a short phone clip.
mkdir -p "$WORK"
videos=()
for seconds in $VIDEO_SECONDS; do
  file=$WORK/clip-${seconds}s.mp4
  if [ ! -s "$file" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=$seconds" \
      -f lavfi -i "testsrc=size=320x240:rate=25:duration=$seconds" \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k -shortest \
      -movflags +faststart "$file"
  fi
  videos+=("$file")
done
LOADTEST_VIDEOS=$(
  IFS=:
  echo "${videos[*]}"
)
export LOADTEST_VIDEOS

own_stack=0
if [ -n "${LOADTEST_URL:-}" ]; then
  TARGET=${LOADTEST_URL%/}
  export STACK_DIR=${LOADTEST_STACK_DIR:-$ROOT/.stack}
else
  own_stack=1
  export STACK_DIR=${LOADTEST_STACK_DIR:-$ROOT/.stack/loadtest}
  export STACK_PROFILE=${LOADTEST_STACK_PROFILE:-release}
  export STACK_REPLICAS=${LOADTEST_REPLICAS:-1}
  export STACK_BIND=127.0.0.1
  export STACK_FRONTEND_PORT=32001 STACK_GATEWAY_PORT=32002 STACK_GATEWAY_ADMIN_PORT=32102
  export STACK_AUTH_PORT=32500 STACK_CONVERTER_PORT=32590 STACK_POSTGRES_PORT=32432
  export STACK_RABBITMQ_PORT=32672 STACK_RABBITMQ_DIST_PORT=32673 STACK_RABBITMQ_MGMT_PORT=32674
  export STACK_RABBITMQ_MANAGEMENT=0 STACK_EPMD_PORT=32369 STACK_MONGO_PORT=32017
  export STACK_REDIS=1 STACK_REDIS_PORT=32379 STACK_PROMETHEUS=0
  export STACK_DEMO_EMAIL=loadtest-demo@example.com
  # Every simulated person registers from this machine's address; see the header.
  export REGISTER_MAX_PER_IP=0
  unset JWT_SECRET DATABASE_PASSWORD RABBITMQ_PASSWORD DEMO_PASSWORD REDIS_PASSWORD STACK_TARGET_DIR STACK_POSTGRES_DIR
  TARGET=http://127.0.0.1:$STACK_GATEWAY_PORT
  finish() {
    if [ "${LOADTEST_KEEP_STACK:-0}" = 1 ]; then
      log "the stack stays up: STACK_DIR=$STACK_DIR scripts/stack.sh down"
    else
      bash scripts/stack.sh down || true
    fi
  }
  trap finish EXIT
  # A fresh stack each run, so the figures do not depend on what an earlier run stored.
  bash scripts/stack.sh clean
  bash scripts/stack.sh up >/dev/null
fi

# CPU seconds (user + system) of each component of the stack, from /proc/<pid>/stat: the
# process of its pid file and its children (nginx's workers, PostgreSQL's backends).
cpu_seconds() {
  local f name pid
  for f in "$STACK_DIR"/run/*.pid "$STACK_DIR/postgres/data/postmaster.pid"; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .pid)
    [ "$name" = postmaster ] && name=postgres
    pid=$(head -1 "$f" | tr -dc '0-9')
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || continue
    echo "$name $pid"
  done | awk -v t="$(getconf CLK_TCK)" '
    { want[$2] = $1 }
    END {
      while (("cat /proc/[0-9]*/stat 2>/dev/null" | getline line) > 0) {
        # The fields after the command name (which may hold spaces, in parentheses).
        pid = line; sub(/ .*/, "", pid)
        sub(/^.*\) /, "", line); split(line, f, " ")
        cpu = (f[12] + f[13]) / t
        if (pid in want) used[want[pid]] += cpu
        else if (f[2] in want) used[want[f[2]]] += cpu
      }
      for (n in used) printf "%s %.2f\n", n, used[n]
    }'
}

cpu_before=$(cpu_seconds)
started=$(date +%s)
log "$USERS simulated people for $DURATION against $TARGET (videos: $VIDEO_SECONDS s)"
status=0
LOADTEST_REPORT=$WORK/report.json "$VENV/bin/locust" -f scripts/loadtest/locustfile.py \
  --headless --host "$TARGET" -u "$USERS" -r "$SPAWN_RATE" --run-time "$DURATION" \
  --stop-timeout 300 --only-summary --loglevel WARNING || status=$?
elapsed=$(($(date +%s) - started))
cpu_after=$(cpu_seconds)

echo
echo "CPU used by each process during the run ($elapsed s; $(nproc) cores on this machine):"
join <(sort <<<"$cpu_before") <(sort <<<"$cpu_after") |
  awk -v e="$elapsed" '{ used = $3 - $2; printf "  %-12s %8.1f s  = %5.2f cores\n", $1, used, used / e }'
if [ "$own_stack" = 1 ]; then
  echo "Converters' own figures (GET /metrics):"
  for port in $(seq "$STACK_CONVERTER_PORT" 10 $((STACK_CONVERTER_PORT + 10 * (STACK_REPLICAS - 1)))); do
    curl -fsS "http://127.0.0.1:$port/metrics" |
      grep -E '^(converter_media_seconds_total|converter_conversion_seconds_(sum|count)|converter_jobs_total)' |
      sed "s/^/  :$port /" || true
  done
fi
echo "Report: $WORK/report.json"
if [ "$status" -ne 0 ]; then
  log "FAILED: errors during the load test (see above)"
  exit "$status"
fi
log "no errors"
