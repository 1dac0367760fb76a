#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the benchmarks need, when missing (groff-base: the e2e
# install test renders the man pages with it; redis-server: the redis broker tests, Sentinel included, which runs as
# `redis-server sentinel.conf --sentinel`; systemd-analyze, from systemd, is used when present but not installed).
# Called by `make run` and `make test`; safe to run again (it only installs what is absent).
set -euo pipefail

build_pkgs=(build-essential clang pkg-config libuv1-dev libjansson-dev node-llhttp libssl-dev
            libjwt-dev libhiredis-dev zlib1g-dev libcmocka-dev)
test_pkgs=(nodejs npm redis-server curl valgrind chromium libclang-rt-dev groff-base)
bench_pkgs=(nginx libnginx-mod-nchan gnuplot-nox linux-perf)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  # nodejs/npm may come from outside Debian's packages on a developer machine: a working binary is enough.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
# apt's own progress lines (one per package fetched, unpacked and set up) show that a long install is moving.
echo "deps: apt-get update" >&2
$SUDO apt-get update
echo "deps: apt-get install (${#missing[@]} packages and their dependencies)" >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: done" >&2
