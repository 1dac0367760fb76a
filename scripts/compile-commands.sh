#!/usr/bin/env bash
# Writes compile_commands.json for clangd/clang-tidy: one entry per C file of the project.
set -eu
flags="$1"; dir=$(pwd); first=1
echo "["
for f in $(find src tests/unit examples bench fuzz -name '*.c' 2>/dev/null | sort); do
  [ $first -eq 1 ] || echo ","; first=0
  printf '  {"directory": "%s", "file": "%s", "command": "%s -c %s"}' "$dir" "$f" "$flags" "$f"
done
echo; echo "]"
