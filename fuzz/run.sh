#!/usr/bin/env bash
# Builds every fuzz/<name>.c as a libFuzzer target (clang, ASan+UBSan) and runs each for FUZZ_SECONDS.
# Fails if a target does not build or finds a crash.
#
#   fuzz/run.sh                    all targets, FUZZ_SECONDS each (default 20): `make fuzz`, CI
#   fuzz/run.sh ws_frame token     just these
#   fuzz/run.sh --long [names]     FUZZ_SECONDS each (default 600), then merge what was found into fuzz/corpus/
#                                  (`make fuzz-long`)
#
# FUZZ_JOBS (default: the number of cores, at most 4) compiles and runs that many at once.
#
# A target lists the sources it needs on one line: /* fuzz-sources: src/x/a.c src/x/b.c */
# Without that line it is linked with all of src/util, src/core and src/transport; "ALL" links every library
# source (not main.c) and llhttp. Each source is compiled once into build/fuzz/obj/ (again when it or a header
# it includes changes) and shared by the targets.
#
# Corpus: fuzz/corpus/<name>/ holds the seeds (hand-written inputs, then minimized finds), read but never written
# by a short run. New inputs go to build/fuzz/corpus/<name>/ (kept between runs), crash reproducers to
# build/fuzz/<name>-crash-*. A long run ends with `-merge=1 fuzz/corpus/<name> build/fuzz/corpus/<name>`, which adds
# to the seeds only the inputs that reach new coverage (FUZZ_MERGE=0 skips it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

long=0
if [ "${1:-}" = --long ]; then
  long=1; shift
fi
secs=${FUZZ_SECONDS:-$([ $long = 1 ] && echo 600 || echo 20)}
cc=${FUZZ_CC:-clang}
cores=$(nproc 2>/dev/null || echo 1)
jobs=${FUZZ_JOBS:-$((cores < 4 ? cores : 4))}
out=build/fuzz
obj=$out/obj
common=(-std=c17 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -I/usr/share/include/llhttp)
# shellcheck disable=SC2054  # the commas are part of -fsanitize=
warn=(-Wall -Wextra -Werror -Wno-unused-parameter)
# shellcheck disable=SC2054
san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
libs=(-luv -ljansson -ljwt -lhiredis -lssl -lcrypto -lz -lm -pthread)
mkdir -p "$out" "$obj"

if [ $# -gt 0 ]; then
  targets=(); for n in "$@"; do targets+=("fuzz/$n.c"); done
else
  targets=(fuzz/*.c)
fi

# The sources of target $1, one per line.
sources_of() {
  local srcs
  srcs=$(sed -n 's|^/\* fuzz-sources: \(.*\) \*/$|\1|p' "$1" | head -1)
  [ -n "$srcs" ] || srcs=$(ls src/util/*.c src/core/*.c src/transport/*.c 2>/dev/null)
  [ "$srcs" = ALL ] && srcs="$(ls src/*/*.c | grep -v '^src/server/main.c$') $(ls /usr/share/llhttp/*.c)"
  printf '%s\n' $srcs
}

obj_of() {
  local s=${1#/}
  echo "$obj/${s%.c}.o"
}

# Compiles source $1 unless its object is newer than it and every header it included last time.
compile() {
  local s=$1 o d
  o=$(obj_of "$s"); d=${o%.o}.dep
  if [ -f "$o" ] && [ -f "$d" ]; then
    local stale=0 dep
    for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
      [ "$dep" -nt "$o" ] && { stale=1; break; }
    done
    [ $stale = 0 ] && return 0
  fi
  mkdir -p "$(dirname "$o")"
  local flags=("${warn[@]}")
  [[ $s == /usr/share/* ]] && flags=(-w)  # not ours (llhttp): built without our warnings
  # Written aside and renamed, so a run.sh started meanwhile never links half an object.
  if ! "$cc" "${common[@]}" "${flags[@]}" -fsanitize=fuzzer-no-link "${san[@]}" -MMD -MF "$d.$$" -MT "$o" -c "$s" -o "$o.$$"; then
    rm -f "$o.$$" "$d.$$"; echo "FAIL fuzz: compile $s"; return 1
  fi
  mv "$d.$$" "$d" && mv "$o.$$" "$o"
}
export -f compile obj_of
export cc obj
export common_s="${common[*]}" warn_s="${warn[*]}" san_s="${san[*]}"

# Every source any selected target needs, compiled in parallel.
mapfile -t all_srcs < <(for t in "${targets[@]}"; do sources_of "$t"; done | sort -u)
echo "# fuzz: compiling ${#all_srcs[@]} sources (${jobs} at a time)"
compile_fail=0
if [ ${#all_srcs[@]} -gt 0 ]; then
  printf '%s\n' "${all_srcs[@]}" | xargs -P "$jobs" -I{} bash -c \
    'common=($common_s); warn=($warn_s); san=($san_s); compile "$1"' _ {} || compile_fail=1
fi

# Builds and runs target $1; prints one result line; returns non-zero on a build failure or a crash.
run_target() {
  local t=$1 name objs=() s
  name=$(basename "$t" .c)
  while read -r s; do objs+=("$(obj_of "$s")"); done < <(sources_of "$t")
  for s in "${objs[@]}"; do
    [ -f "$s" ] || { echo "FAIL fuzz $name: build (missing $s)"; return 1; }
  done
  if ! "$cc" "${common[@]}" "${warn[@]}" -fsanitize=fuzzer "${san[@]}" -o "$out/$name" "$t" "${objs[@]}" "${libs[@]}" \
       >"$out/$name.build.log" 2>&1; then
    echo "FAIL fuzz $name: build"; cat "$out/$name.build.log"; return 1
  fi
  local work=$out/corpus/$name seeds=()
  mkdir -p "$work"
  [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
  # The work dir comes first: libFuzzer writes new inputs only there, so the seeds in the tree stay as they are.
  if ! "$out/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/$name-" "$work" "${seeds[@]}" >"$out/$name.log" 2>&1; then
    echo "FAIL fuzz $name: see $out/$name.log"; tail -40 "$out/$name.log"; return 1
  fi
  local runs
  runs=$(grep -a -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$')
  if [ $long = 1 ] && [ "${FUZZ_MERGE:-1}" != 0 ]; then
    mkdir -p "fuzz/corpus/$name"
    local before after
    before=$(find "fuzz/corpus/$name" -type f | wc -l)
    "$out/$name" -merge=1 -timeout=10 -rss_limit_mb=2048 "fuzz/corpus/$name" "$work" >"$out/$name.merge.log" 2>&1 ||
      { echo "FAIL fuzz $name: merge, see $out/$name.merge.log"; return 1; }
    after=$(find "fuzz/corpus/$name" -type f | wc -l)
    echo "ok   fuzz $name (${runs} runs in ${secs}s; corpus $before -> $after files, $(du -sb "fuzz/corpus/$name" | cut -f1) bytes)"
  else
    echo "ok   fuzz $name (${runs} runs in ${secs}s)"
  fi
}

fail=$compile_fail
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || fail=1
    running=$((running - 1))
  fi
  echo "# fuzz $(basename "$t" .c): ${secs}s"
  run_target "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || fail=1
  running=$((running - 1))
done
exit $fail
