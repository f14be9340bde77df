#!/usr/bin/env bash
# Converter benchmark: our in-process transcoder vs `ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3`.
# Inputs (a short clip and a 10-minute 720p H.264 + AAC video) are made with lavfi once and cached
# in ${BENCH_CACHE:-/var/tmp/vidconv-bench}. Prints per input the median wall-time ratio ours/CLI,
# the realtime factors and peak RSS, then the throughput of N concurrent conversions vs one; then
# segment-parallel encoding: the 10-minute and a 60-minute input on 1, 2 and 4 slots against the
# CLI, and the seam quality (SNR, worst seam window) of 2- and 4-way splits of a music-like input.
# Options: BENCH_RUNS (default 5), BENCH_PARALLEL (default: CPUs), BENCH_SEGMENT_RUNS (default 3),
# BENCH_SEGMENTS_ONLY=1 (only the segment part).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vidconv-target}
command -v ffmpeg >/dev/null || { echo "bench-converter: ffmpeg CLI missing (scripts/test-deps.sh installs it)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-converter: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p converter --example transcode --example bench
args=(--runs "${BENCH_RUNS:-5}" --cache "${BENCH_CACHE:-/var/tmp/vidconv-bench}")
[ -n "${BENCH_PARALLEL:-}" ] && args+=(--parallel "$BENCH_PARALLEL")
[ -n "${BENCH_SEGMENT_RUNS:-}" ] && args+=(--segment-runs "$BENCH_SEGMENT_RUNS")
[ -n "${BENCH_SEGMENTS_ONLY:-}" ] && args+=(--segments-only)
"$CARGO_TARGET_DIR/release/examples/bench" "${args[@]}"
