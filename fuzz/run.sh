#!/usr/bin/env bash
# Builds every fuzz/<name>.c as a libFuzzer target (clang, ASan+UBSan) and runs each for
# FUZZ_SECONDS (default 20). Fails if a target does not build or finds a crash.
#
#   fuzz/run.sh              all targets
#   fuzz/run.sh ws_frame     just these
#
# A target lists the sources it needs on one line: /* fuzz-sources: src/x/a.c src/x/b.c */
# Without that line it is linked with all of src/util, src/core and src/transport.
# Seeds are read from fuzz/corpus/<name>/ (never written); new inputs go to build/fuzz/corpus/<name>/,
# crash reproducers to build/fuzz/<name>-crash-*.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

secs=${FUZZ_SECONDS:-20}
cc=${FUZZ_CC:-clang}
out=build/fuzz
# shellcheck disable=SC2054  # the commas are part of -fsanitize=
flags=(-std=c17 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -I/usr/share/include/llhttp
       -Wall -Wextra -Werror -Wno-unused-parameter
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
libs=(-luv -ljansson -ljwt -lhiredis -lssl -lcrypto -lz -lm -pthread)
mkdir -p "$out"

if [ $# -gt 0 ]; then
  targets=(); for n in "$@"; do targets+=("fuzz/$n.c"); done
else
  targets=(fuzz/*.c)
fi

fail=0
for t in "${targets[@]}"; do
  name=$(basename "$t" .c)
  srcs=$(sed -n 's|^/\* fuzz-sources: \(.*\) \*/$|\1|p' "$t" | head -1)
  [ -n "$srcs" ] || srcs=$(ls src/util/*.c src/core/*.c src/transport/*.c 2>/dev/null)
  # ALL: every library source (not main.c) and llhttp, for parsers that sit on top of the server's pieces.
  if [ "$srcs" = ALL ]; then
    mkdir -p "$out/llhttp"
    for f in /usr/share/llhttp/*.c; do  # not ours: built without -Werror
      o="$out/llhttp/$(basename "$f" .c).o"
      [ -f "$o" ] || "$cc" -g -O1 -fsanitize=fuzzer-no-link,address -w -I/usr/share/include/llhttp -c "$f" -o "$o" || fail=1
    done
    srcs="$(ls src/*/*.c | grep -v '^src/server/main.c$') $(ls "$out"/llhttp/*.o)"
  fi
  echo "# fuzz $name: building"
  # shellcheck disable=SC2086
  if ! "$cc" "${flags[@]}" -o "$out/$name" "$t" $srcs "${libs[@]}"; then
    echo "FAIL fuzz $name: build"; fail=1; continue
  fi
  mkdir -p "$out/corpus/$name"
  seeds=(); [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
  echo "# fuzz $name: running ${secs}s"
  if "$out/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/$name-" "$out/corpus/$name" "${seeds[@]}" >"$out/$name.log" 2>&1; then
    echo "ok   fuzz $name ($(grep -a -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$') runs)"
  else
    echo "FAIL fuzz $name: see $out/$name.log"; tail -40 "$out/$name.log"; fail=1
  fi
done
exit $fail
