#!/usr/bin/env bash
# Benchmarks that print ratios measured in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bench-converter.sh
bash scripts/bench-e2e.sh
bash scripts/bench-gateway.sh
bash scripts/bench-events.sh
