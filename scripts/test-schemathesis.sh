#!/usr/bin/env bash
# Schemathesis (property-based API fuzzing, pinned below) against the OpenAPI documents of auth
# and the gateway: no server error (5xx) and no answer that breaks its documented schema or
# status codes; for auth also no schema-valid request refused and no invalid one accepted
# (schemathesis's conformance checks). Starts both services on free ports against the real Postgres, RabbitMQ and the
# MongoDB stand-in (scripts/test-deps.sh), with databases and a queue of their own, removed at
# the end. Bounded to about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
eval "$(bash scripts/test-deps.sh)"

ST_VERSION=4.32.5
PYMONGO_VERSION=4.20.0
VENV=$ROOT/.stack/schemathesis
log() { echo "test-schemathesis: $*" >&2; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  log "installing schemathesis $ST_VERSION into .stack/schemathesis"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION" "pymongo==$PYMONGO_VERSION"
fi

cargo build --locked -q -p auth -p gateway
BIN=$CARGO_TARGET_DIR/debug

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RUN_ID=st_$$_$(date +%s)
AUTH_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
SECRET=$(openssl rand -hex 32)
PG_DB=$RUN_ID
# mongodb://host:port/?opts -> mongodb://host:port and ?opts, to put a database in between.
MONGO_BASE=${TEST_MONGODB_URI%%\?*}
MONGO_BASE=${MONGO_BASE%/}
MONGO_QUERY=
case "$TEST_MONGODB_URI" in *\?*) MONGO_QUERY="?${TEST_MONGODB_URI#*\?}" ;; esac
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q "$TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  "$VENV/bin/python" - "$TEST_MONGODB_URI" "videos_$RUN_ID" "mp3s_$RUN_ID" <<'PY' || true
import sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)
for name in sys.argv[2:]:
    client.drop_database(name)
PY
  rabbitmqctl -q delete_queue "video_$RUN_ID" >/dev/null 2>&1 \
    || sudo -n rabbitmqctl -q delete_queue "video_$RUN_ID" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$TEST_DATABASE_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
PG_URL="${TEST_DATABASE_URL%/*}/$PG_DB"

# No registration limit (0): the fuzzer comes from one address and should get past the limit.
AUTH_ADDR=127.0.0.1:$AUTH_PORT DATABASE_URL=$PG_URL JWT_SECRET=$SECRET REGISTER_MAX_PER_IP=0 RUST_LOG=warn \
  "$BIN/auth" >"$WORK/auth.log" 2>&1 &
PIDS+=($!)
GATEWAY_ADDR=127.0.0.1:$GATEWAY_PORT GATEWAY_ADMIN_ADDR=127.0.0.1:0 AUTH_SVC_ADDRESS=127.0.0.1:$AUTH_PORT JWT_SECRET=$SECRET \
  MONGODB_VIDEOS_URI="$MONGO_BASE/videos_$RUN_ID$MONGO_QUERY" \
  MONGODB_MP3S_URI="$MONGO_BASE/mp3s_$RUN_ID$MONGO_QUERY" \
  RABBITMQ_URL=$TEST_AMQP_URL VIDEO_QUEUE=video_$RUN_ID MAX_UPLOAD_BYTES=1048576 RUST_LOG=warn \
  "$BIN/gateway" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)

for port in "$AUTH_PORT" "$GATEWAY_PORT"; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || {
    log "a service on port $port did not come up"
    cat "$WORK"/*.log >&2
    exit 1
  }
done

# A real account, so that operations behind a token are exercised past the 401.
EMAIL="fuzz-$RUN_ID@example.com"
PASSWORD=$(openssl rand -hex 12)
curl -sf -X POST -u "$EMAIL:$PASSWORD" "http://127.0.0.1:$GATEWAY_PORT/register" >/dev/null
TOKEN=$(curl -sf -X POST -u "$EMAIL:$PASSWORD" "http://127.0.0.1:$GATEWAY_PORT/login")

# Beyond no 5xx and documented answers, the conformance checks: a request the document calls
# valid is accepted, one it calls invalid is refused. The same for every service.
CHECKS=not_a_server_error,response_schema_conformance,status_code_conformance,positive_data_acceptance,negative_data_rejection
status=0
run_st() {
  local name=$1
  shift
  log "fuzzing $name ($CHECKS)"
  # From the scratch directory: schemathesis keeps a cache (.schemathesis/) where it runs. A
  # generous request timeout: on a loaded 2-core machine the Mongo stand-in answers slowly.
  local global=()
  if [ "${1:-}" = --config-file ]; then global=("$1" "$2"); shift 2; fi
  # The caller's options last: they override the defaults here.
  (cd "$WORK" && "$VENV/bin/st" "${global[@]}" run --checks "$CHECKS" --max-examples 30 --max-time 45 \
    --request-timeout 30 --seed 20261201 --generation-database none --no-color \
    --report-dir "$WORK/report-$name" "$@") || status=1
}
# scripts/schemathesis-gateway.toml says which schema-valid uploads may still be refused.
NO_COLOR=1 run_st gateway --config-file "$ROOT/scripts/schemathesis-gateway.toml" \
  "http://127.0.0.1:$GATEWAY_PORT/openapi.json" \
  -H "Authorization: Bearer $TOKEN" --exclude-path-regex '^/(login|register)$'
# The gateway's auth proxy takes HTTP Basic, and every request costs auth an argon2 hash: fewer.
NO_COLOR=1 run_st gateway-proxy "http://127.0.0.1:$GATEWAY_PORT/openapi.json" \
  -a "$EMAIL:$PASSWORD" --include-path-regex '^/(login|register)$' --max-examples 10 --max-time 20
# Each operation gets the credentials of the security scheme its entry names: Basic for /login
# and /register, the token for /validate. Schemathesis reads ${VAR} from the environment.
cat >"$WORK/auth-schemathesis.toml" <<'TOML'
[auth.openapi.basic]
username = "${ST_EMAIL}"
password = "${ST_PASSWORD}"

[auth.openapi.bearer]
bearer = "${ST_TOKEN}"
TOML
ST_EMAIL=$EMAIL ST_PASSWORD=$PASSWORD ST_TOKEN=$TOKEN NO_COLOR=1 \
  run_st auth --config-file "$WORK/auth-schemathesis.toml" \
  "http://127.0.0.1:$AUTH_PORT/openapi.json"

if [ "$status" -ne 0 ]; then
  log "schemathesis found problems (service logs below)"
  tail -n 50 "$WORK"/*.log >&2
fi
exit "$status"
