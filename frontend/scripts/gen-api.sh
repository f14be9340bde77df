#!/usr/bin/env bash
# Regenerates src/api/schema.gen.ts, the TypeScript types of the gateway's API, from the OpenAPI
# document the gateway binary prints (`gateway --print-openapi`, the same document /openapi.json
# serves). Run it (`npm run gen:api`) after changing a route, and commit the result;
# scripts/test-frontend.sh regenerates into a temporary directory and fails on any difference.
#
#   scripts/gen-api.sh [OUT_DIR]   writes OUT_DIR/openapi.json and OUT_DIR/schema.gen.ts
#                                  (default: src/api, and the JSON to a temporary file)
#   GATEWAY_BIN=path/to/gateway    use this binary instead of `cargo build -p gateway`
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gateway=${GATEWAY_BIN:-}
if [[ -z $gateway ]]; then
  (cd .. && cargo build -q -p gateway)
  # CARGO_TARGET_DIR may be relative (to the workspace); cargo says where it put the binary.
  target=$(cd .. && cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')
  gateway=$target/debug/gateway
fi

"$gateway" --print-openapi >"$work/openapi.json"
# --enum-values: every enum of the document also becomes an array the pages can offer as options.
npx --no-install openapi-typescript "$work/openapi.json" --enum-values --output "$work/schema.gen.ts" >/dev/null

if [[ -n $out ]]; then
  mkdir -p "$out"
  cp "$work/openapi.json" "$work/schema.gen.ts" "$out/"
else
  cp "$work/schema.gen.ts" src/api/schema.gen.ts
  echo "gen-api: wrote src/api/schema.gen.ts"
fi
