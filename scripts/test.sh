#!/usr/bin/env bash
# `npm test`: install what is missing (Debian packages, npm packages, the OpenClaw runtime), check
# types and lint, then run every unit, integration and end-to-end test in one node test run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/deps.sh
echo "== runtime" >&2
./bin/clawkeep runtime install
echo "== typecheck" >&2
npx tsc --noEmit
echo "== lint" >&2
npx biome check .
echo "== tests" >&2
shopt -s globstar nullglob
files=(src/**/*.test.ts test/**/*.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
# One file at a time: integration tests start real gateways, and OpenClaw starts are CPU-heavy.
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
