#!/usr/bin/env bash
# Builds the ingest libFuzzer targets and runs one of them for a given time.
#
#   bench/fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#   TARGET: feed cap usgs gdacs_rss gdacs_api acled reliefweb xml_safety
#
# Build dir: $AMPARO_FUZZ_BUILD (default <repo>/build-fuzz), configured with
# clang 14 (-fsanitize=fuzzer,address,undefined). The corpus is a scratch copy:
# the committed regression seeds (services/ingest/fuzz/corpus/TARGET/) plus
# the matching files of ../shared/fixtures (copied at run time, never
# committed). New inputs libFuzzer finds stay in the scratch dir
# ($AMPARO_FUZZ_WORK, default /tmp/amparo-fuzz/TARGET); minimise them into the
# committed seeds with:  fuzz_TARGET -merge=1 services/ingest/fuzz/corpus/TARGET $AMPARO_FUZZ_WORK/corpus
# Crash inputs are written to $AMPARO_FUZZ_WORK/artifacts/.
#
# Prints one summary line: target, seconds, execs, execs/s, crashes, corpus.
# Exit status: 0 when no crash, 1 when libFuzzer found one, 2 on usage/build errors.
set -euo pipefail
"$(cd "$(dirname "$0")/../.." && pwd)/deploy/install-deps" --bench

if [[ $# -lt 2 ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target=$1
seconds=$2
shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
fixtures=$(cd "$repo/../shared/fixtures" && pwd)
build=${AMPARO_FUZZ_BUILD:-$repo/build-fuzz}
work=${AMPARO_FUZZ_WORK:-/tmp/amparo-fuzz/$target}
max_len=${AMPARO_FUZZ_MAX_LEN:-65536}

case $target in
  feed | cap | usgs | gdacs_rss | gdacs_api | acled | reliefweb | xml_safety) ;;
  *) echo "unknown target '$target'" >&2; exit 2 ;;
esac

cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
if [[ ! -f $build/build.ninja ]]; then
  CC=$cc CXX=$cxx cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DAMPARO_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
fi
ninja -C "$build" -j2 "fuzz_$target" >/dev/null || { echo "build of fuzz_$target failed" >&2; exit 2; }

# Seeds: which fixtures feed which target (files up to 256 KB).
seed_globs() {
  case $1 in
    feed) echo "cap gdacs usgs reliefweb geojson-validation" ;;
    cap) echo "cap gdacs/cap-kontur" ;;
    usgs) echo "usgs geojson-validation" ;;
    gdacs_rss) echo "gdacs/rss-exxamalte gdacs/rss-ocha-hdx gdacs/cap-kontur" ;;
    gdacs_api) echo "gdacs/api-monty" ;;
    acled) echo "" ;;  # ACLED rows may not be redistributed: synthetic seeds only (committed corpus)
    reliefweb) echo "reliefweb" ;;
    xml_safety) echo "cap gdacs" ;;
  esac
}
rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/artifacts"
committed=$repo/services/ingest/fuzz/corpus/$target
[[ -d $committed ]] && cp "$committed"/* "$work/corpus/" 2>/dev/null || true
for dir in $(seed_globs "$target"); do
  [[ -d $fixtures/$dir ]] || continue
  find "$fixtures/$dir" -type f -size -256k ! -name '*.md' ! -name '*.xsd' -print0 |
    while IFS= read -r -d '' f; do cp "$f" "$work/corpus/seed-$(sha1sum "$f" | cut -c1-16)"; done
done
rm -f "$work/artifacts"/*

log=$work/fuzz.log
set +e
"$build/bin/fuzz_$target" "$work/corpus" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" >"$log" 2>&1
rc=$?
set -e

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
crashes=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
corpus=$(ls "$work/corpus" | wc -l)
printf 'target=%s seconds=%s execs=%s execs_per_s=%s crashes=%s corpus_files=%s log=%s\n' \
  "$target" "$seconds" "${execs:-0}" "${rate:-0}" "$crashes" "$corpus" "$log"
if [[ $crashes -gt 0 || $rc -ne 0 ]]; then
  ls "$work/artifacts" >&2
  grep -m1 -A15 'ERROR:\|runtime error' "$log" >&2 || tail -20 "$log" >&2
  exit 1
fi
