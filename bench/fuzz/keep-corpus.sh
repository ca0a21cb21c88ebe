#!/usr/bin/env bash
# Folds what a bench/fuzz/run.sh session grew into the committed regression
# seeds (services/ingest/fuzz/corpus/TARGET/): libFuzzer -merge=1 keeps only
# inputs that add coverage over the fixture seeds and the seeds already
# committed; fixture copies themselves are never committed. Then the largest
# new inputs are dropped until the folder is under MAX_KB (default 200).
#
#   bench/fuzz/keep-corpus.sh TARGET [MAX_KB]
set -euo pipefail
target=$1
max_kb=${2:-200}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${AMPARO_FUZZ_BUILD:-$repo/build-fuzz}
work=${AMPARO_FUZZ_WORK:-/tmp/amparo-fuzz/$target}
committed=$repo/services/ingest/fuzz/corpus/$target
mkdir -p "$committed"
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
# Baseline = fixture seeds + committed seeds; candidates = everything libFuzzer added.
cp "$work"/corpus/seed-* "$base"/ 2>/dev/null || true
cp "$committed"/* "$base"/ 2>/dev/null || true
before=$(ls "$base")
mkdir -p "$base.new"
find "$work/corpus" -type f ! -name 'seed-*' -exec cp {} "$base.new"/ \;
"$build/bin/fuzz_$target" -merge=1 -max_len=65536 -timeout=10 "$base" "$base.new" >"$work/merge.log" 2>&1
rm -rf "$base.new"
for f in "$base"/*; do
  name=$(basename "$f")
  grep -qxF "$name" <<<"$before" || cp "$f" "$committed/$name"
done
# Keep it small: drop the largest files first.
while [[ $(du --apparent-size -sk "$committed" | cut -f1) -gt $max_kb ]]; do
  rm -f "$(ls -S "$committed"/* | head -1)"
done
echo "$target: $(ls "$committed" | wc -l) files, $(du --apparent-size -sk "$committed" | cut -f1) KB in $committed"
