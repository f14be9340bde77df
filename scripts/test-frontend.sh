#!/usr/bin/env bash
# The frontend's checks without a running stack: npm packages (npm ci when needed), the API types
# generated from the gateway's OpenAPI document (up to date?), TypeScript, ESLint, Vitest
# component tests, the production build, and the nginx template (nginx -t plus a run against a
# stand-in gateway). The browser suite against a real stack is `make test-e2e`.
# The API check builds the gateway (`cargo build -p gateway`; honours CARGO_TARGET_DIR, and
# `make test` has built it already in test-rust) unless GATEWAY_BIN names a binary.
set -euo pipefail
cd "$(dirname "$0")/../frontend"

need_apt=()
command -v node >/dev/null 2>&1 || { echo "test-frontend: Node.js >= 20.19 is required (node not found)" >&2; exit 1; }
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
command -v envsubst >/dev/null 2>&1 || need_apt+=(gettext-base)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ((${#need_apt[@]})); then
  echo "test-frontend: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# npm ci only when node_modules is missing or older than the lock file: it deletes and refetches everything.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "test-frontend: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "test-frontend: generated API types and rules (src/api/*.gen.ts) match the gateway's OpenAPI document"
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
bash scripts/gen-api.sh "$generated"
for file in schema.gen.ts rules.gen.ts; do
  if ! diff -u "src/api/$file" "$generated/$file"; then
    echo "test-frontend: src/api/$file is out of date with the gateway's OpenAPI document; run 'npm run gen:api' in frontend/ and commit it" >&2
    exit 1
  fi
done

echo "test-frontend: tsc"
npm run --silent typecheck

echo "test-frontend: eslint"
npm run --silent lint

echo "test-frontend: vitest"
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=$?
node -e '
  const r = require("./test-results/vitest.json");
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' || true
((status == 0)) || exit "$status"

echo "test-frontend: vite build"
npm run --silent build

echo "test-frontend: nginx template"
python3 scripts/nginx_check.py dist
