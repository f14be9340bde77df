#!/usr/bin/env bash
# End-to-end tests against a real stack: starts one with scripts/stack.sh in its own directory
# (.stack/e2e) on its own ports (never those of a developer's `make up`), runs the Rust suite of
# crates/e2e, then the frontend's Playwright suite when frontend/package.json has `test:e2e`, and
# always stops the stack. Exits non-zero when anything failed, after printing the services' logs.
#
# E2E_STACK_PROFILE=release tests release binaries (default debug: the build the unit tests
# already made, much cheaper on 2 cores). E2E_*_PORT and E2E_STACK_DIR move the stack.
# The stack runs E2E_REPLICAS (default 2) replicas of each service behind the balancer, with its
# own Redis, so every suite goes through the replicas and the replica tests have two of each.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}

# Only E2E_* variables move this stack: a developer's STACK_* settings are for their own one.
export STACK_DIR=${E2E_STACK_DIR:-$ROOT/.stack/e2e}
export STACK_PROFILE=${E2E_STACK_PROFILE:-debug}
export STACK_BIND=127.0.0.1
export STACK_FRONTEND_PORT=${E2E_FRONTEND_PORT:-31001}
export STACK_GATEWAY_PORT=${E2E_GATEWAY_PORT:-31002}
export STACK_GATEWAY_ADMIN_PORT=${E2E_GATEWAY_ADMIN_PORT:-31102}
export STACK_AUTH_PORT=${E2E_AUTH_PORT:-31500}
export STACK_CONVERTER_PORT=${E2E_CONVERTER_PORT:-31590}
export STACK_POSTGRES_PORT=${E2E_POSTGRES_PORT:-31432}
export STACK_RABBITMQ_PORT=${E2E_RABBITMQ_PORT:-31672}
export STACK_RABBITMQ_DIST_PORT=${E2E_RABBITMQ_DIST_PORT:-31673}
export STACK_RABBITMQ_MGMT_PORT=${E2E_RABBITMQ_MGMT_PORT:-31674}
export STACK_RABBITMQ_MANAGEMENT=0
export STACK_EPMD_PORT=${E2E_EPMD_PORT:-31369}
export STACK_MONGO_PORT=${E2E_MONGO_PORT:-31017}
export STACK_REDIS=1
export STACK_REDIS_PORT=${E2E_REDIS_PORT:-31379}
export STACK_REPLICAS=${E2E_REPLICAS:-2}
export STACK_MAX_UPLOAD_BYTES=${E2E_MAX_UPLOAD_BYTES:-1073741824}
export STACK_DEMO_EMAIL=e2e-demo@example.com
# Every test registers its own users, all from 127.0.0.1: more than auth's default
# REGISTER_MAX_PER_IP allows an address in an hour (the limit has tests of its own).
export REGISTER_MAX_PER_IP=0
# Secrets are generated for this stack, never taken from the developer's environment.
unset JWT_SECRET DATABASE_PASSWORD RABBITMQ_PASSWORD DEMO_PASSWORD REDIS_PASSWORD STACK_TARGET_DIR STACK_POSTGRES_DIR

log() { echo "test-e2e: $*" >&2; }
failed=0

finish() {
  local code=$?
  [ "$code" -eq 0 ] || failed=1
  if [ "$failed" -ne 0 ]; then
    log "FAILED; the last lines of the services' logs ($STACK_DIR/logs):"
    STACK_LOGS_NO_FOLLOW=1 STACK_LOGS_LINES=60 bash scripts/stack.sh logs auth gateway converter mongo >&2 || true
  fi
  log "stopping the e2e stack"
  bash scripts/stack.sh down || true
  if [ "$failed" -ne 0 ]; then exit 1; fi
}
trap finish EXIT

# A fresh stack: stop whatever an interrupted run left, and forget its data.
bash scripts/stack.sh clean
bash scripts/stack.sh up

export E2E_GATEWAY_URL=http://127.0.0.1:$STACK_GATEWAY_PORT
export E2E_GATEWAY_ADMIN_URL=http://127.0.0.1:$STACK_GATEWAY_ADMIN_PORT
export E2E_CONVERTER_URL=http://127.0.0.1:$STACK_CONVERTER_PORT
export E2E_MONGODB_URI="mongodb://127.0.0.1:$STACK_MONGO_PORT/?directConnection=true"
export E2E_STACK_SCRIPT=$ROOT/scripts/stack.sh
export E2E_REPLICAS=$STACK_REPLICAS
# Each auth replica directly (replica r listens on the auth port + 10 * r behind the balancer;
# see scripts/stack/lib.sh), for the test that the login limits hold across them.
E2E_AUTH_REPLICA_URLS=""
if [ "$STACK_REPLICAS" -gt 1 ]; then
  for ((r = 1; r <= STACK_REPLICAS; r++)); do
    E2E_AUTH_REPLICA_URLS+="${E2E_AUTH_REPLICA_URLS:+,}http://127.0.0.1:$((STACK_AUTH_PORT + 10 * r))"
  done
fi
export E2E_AUTH_REPLICA_URLS

log "Rust end-to-end suite (crates/e2e) against $E2E_GATEWAY_URL"
if cargo nextest --version >/dev/null 2>&1; then
  # Same package selection as scripts/test-rust.sh, so the build it made is reused as is.
  cargo nextest run --workspace --locked --no-fail-fast -E 'package(e2e)' || failed=1
else
  cargo test -p e2e --locked --no-fail-fast -- --test-threads=1 || failed=1
fi

if [ -f frontend/package.json ] && grep -q '"test:e2e"' frontend/package.json; then
  log "frontend Playwright suite against http://localhost:$STACK_FRONTEND_PORT"
  # Debian's Chromium drives the browser tests; no browser can be downloaded here.
  if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null; then
    log "installing Debian's chromium for Playwright"
    if [ "$(id -u)" -eq 0 ]; then sudo_=(); else sudo_=(sudo); fi
    "${sudo_[@]}" apt-get update -qq && "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  (cd frontend && BASE_URL=http://localhost:$STACK_FRONTEND_PORT npm run test:e2e) || failed=1
else
  log "no test:e2e script in frontend/package.json yet; browser suite skipped"
fi

[ "$failed" -eq 0 ] && log "all end-to-end suites passed"
