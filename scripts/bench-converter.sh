#!/usr/bin/env bash
# Converter benchmark: our in-process transcoder vs `ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3`.
# Inputs (a short clip and a 10-minute 720p H.264 + AAC video) are made with lavfi once and cached
# in ${BENCH_CACHE:-/var/tmp/vidconv-bench}. Prints per input the median wall-time ratio ours/CLI,
# the realtime factors and peak RSS, then the throughput of N concurrent conversions vs one.
# Options: BENCH_RUNS (default 5), BENCH_PARALLEL (default: CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
command -v ffmpeg >/dev/null || { echo "bench-converter: ffmpeg CLI missing (scripts/test-deps.sh installs it)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-converter: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p converter --example transcode --example bench
args=(--runs "${BENCH_RUNS:-5}" --cache "${BENCH_CACHE:-/var/tmp/vidconv-bench}")
[ -n "${BENCH_PARALLEL:-}" ] && args+=(--parallel "$BENCH_PARALLEL")
"$CARGO_TARGET_DIR/release/examples/bench" "${args[@]}"
