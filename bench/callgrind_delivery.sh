#!/usr/bin/env bash
# Instructions per delivered message of two server builds, under callgrind (docs/benchmarks.md, "What limits and
# lingering close cost"): 100 /ws subscribers, a run without events and one with 200; the difference over 20000
# deliveries. Usage: [SUBS=100] bench/callgrind_delivery.sh BEFORE_BIN AFTER_BIN [EXTRA SERVER FLAGS FOR A THIRD RUN...]
set -u
before=${1:?before binary} after=${2:?after binary}; shift 2
LG=${LOADGEN:-build/release/bench/loadgen}
SUBS=${SUBS:-100}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() { # NAME BIN SUBS EVENTS [FLAGS...]
  local name=$1 bin=$2 subs=$3 events=$4; shift 4
  local port=39201
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.$name" "$bin" serve --listen 127.0.0.1:$port --workers 1 --insecure "$@" > "$W/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
  timeout 300 "$LG" --target realtime --url 127.0.0.1:$port --transport ws --subs "$subs" --events "$events" --rate 20 \
    --connect-rate 500 --settle 1 --drain 10 --quiet --timeout 240 > /dev/null
  kill -TERM $pid; wait $pid
  awk '/^(summary|totals):/ { print $2; exit }' "$W/cg.$name"
}
report() { # NAME BIN [FLAGS...]
  local name=$1 bin=$2; shift 2
  local idle run
  idle=$(run "$name-idle" "$bin" "$SUBS" 0 "$@")
  run=$(run "$name-run" "$bin" "$SUBS" 200 "$@")
  echo "$name: $SUBS subscribers: idle $idle, with 200 events $run, per delivery $(( (run - idle) / (200 * SUBS) ))"
}
report before "$before"
report after "$after"
[ $# -gt 0 ] && report "after $*" "$after" "$@"
