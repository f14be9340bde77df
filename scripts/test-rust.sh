#!/usr/bin/env bash
# rustfmt, unused dependencies, clippy, then every Rust test against the real Postgres, RabbitMQ
# and Mongo stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
eval "$(bash scripts/test-deps.sh)"

cargo fmt --all -- --check
bash scripts/check-unused-deps.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # The end-to-end package needs a running stack: scripts/test-e2e.sh runs it. It is still built
  # here (same package selection, so test-e2e reuses this build instead of making another).
  cargo nextest run --workspace --locked --no-fail-fast -E 'not package(e2e)'
else
  cargo test --workspace --exclude e2e --locked --no-fail-fast
fi
