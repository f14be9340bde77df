#!/usr/bin/env bash
# rustfmt, clippy, then every Rust test against the real Postgres, RabbitMQ and Mongo stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
eval "$(bash scripts/test-deps.sh)"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
