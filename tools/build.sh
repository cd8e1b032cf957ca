#!/usr/bin/env bash
# Configures and builds one flavour: release, sanitize, fuzz or tsan (see
# CMakeLists.txt). Extra arguments are ninja targets (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
shift || true
dir="${FJORD_BUILD_DIR:-build/$flavour}"
jobs="${FJORD_JOBS:-$(nproc)}"
case "$flavour" in
  release)  args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  sanitize) args=(-DCMAKE_BUILD_TYPE=Debug -DFJORD_SANITIZE=ON) ;;
  fuzz)     args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFJORD_FUZZ=ON
                  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14) ;;
  tsan)     args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFJORD_TSAN=ON) ;;
  *) echo "build.sh: unknown flavour $flavour" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
fi
# Progress every 100 steps; compiler output in full.
ninja -C "$dir" -j "$jobs" "$@" | awk '/^\[[0-9]+\/[0-9]+\]/ { gsub(/[\[\]]/, "", $1); split($1, a, "/"); if (a[1] % 100 == 0 || a[1] == a[2]) print "  " $1; next } { print }'
