#!/usr/bin/env bash
# Runs each unit test binary in its own process with a timeout; prints one closing summary line.
set -u
pass=0 fail=0
for t in "$@"; do
  if timeout 120 "$t" >"$t.log" 2>&1; then pass=$((pass + 1)); echo "ok   $t"
  else fail=$((fail + 1)); echo "FAIL $t"; tail -40 "$t.log"; fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
