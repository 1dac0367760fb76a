#!/usr/bin/env bash
# End-to-end tests: the real server binary driven by real npm clients under node's test runner.
# Usage: bash scripts/e2e.sh [path/to/realtime]   (make e2e passes build/release/realtime)
# Runs `npm ci` in tests/e2e when node_modules is missing or older than package-lock.json, then every
# tests/e2e/*.test.js one file at a time. Exits non-zero when a test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-build/release/realtime}"
case "$bin" in
    /*) ;;
    *) bin="$root/$bin" ;;
esac
if [ ! -x "$bin" ]; then
    echo "e2e: server binary not found or not executable: $bin (run make first)" >&2
    exit 2
fi
if ! command -v node >/dev/null 2>&1; then
    echo "e2e: node is required (Node 20 or later)" >&2
    exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "e2e: Node 20 or later is required (found $(node --version))" >&2
    exit 2
fi

dir="$root/tests/e2e"
if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "e2e: npm ci in tests/e2e"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    touch "$dir/node_modules"
fi

export REALTIME_BIN="$bin"
cd "$dir"
shopt -s nullglob
tests=(./*.test.js)
if [ "${#tests[@]}" -eq 0 ]; then
    echo "e2e: no tests in $dir" >&2
    exit 2
fi
echo "e2e: REALTIME_BIN=$REALTIME_BIN, ${#tests[@]} files"
# The spec reporter prints each test and node's summary (tests, pass, fail, todo, duration) at the end.
# --test-timeout caps any test that sets no timeout of its own; --test-force-exit ends a file whose tests are
# done even if a client library left a handle open, so one file cannot hang the suite.
exec node --test --test-concurrency=1 --test-timeout=120000 --test-force-exit --test-reporter=spec "${tests[@]}"
