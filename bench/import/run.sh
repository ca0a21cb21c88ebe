#!/usr/bin/env bash
# Builds bench-import in Release and runs it (1M rows by default; extra
# arguments go to bench-import, e.g. --rows 100000 or --batch 1000).
# Uses the top-level AMPARO_BENCH option when the project has it, else the
# standalone bench/ project.
set -euo pipefail
"$(cd "$(dirname "$0")/../.." && pwd)/deploy/install-deps" --bench
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build-bench-release}"
if grep -q AMPARO_BENCH "$root/CMakeLists.txt"; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAMPARO_BENCH=ON -DBUILD_TESTING=OFF >/dev/null
else
  cmake -S "$root/bench" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$build" -j"$(nproc)" bench-import >/dev/null
bin="$(find "$build" -type f -name bench-import -perm -u+x | head -n1)"
exec "$bin" "$@"
