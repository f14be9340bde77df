#!/usr/bin/env bash
# What the browser suite needs besides npm packages: Debian's chromium (Playwright never
# downloads a browser here) and the ffmpeg CLI (the suite makes its test video with it).
set -euo pipefail
missing=()
[[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]] || missing+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
if ((${#missing[@]})); then
  echo "e2e: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cd "$(dirname "$0")/.."
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "e2e: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
