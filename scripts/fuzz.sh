#!/usr/bin/env bash
# Runs every fuzz target of a KOE_FUZZ build for a number of seconds on its seed corpus
# (fuzz/corpus/<target>/, committed). New inputs go to a scratch copy, so the committed corpus
# only changes by hand. Prints each target's executions; fails on the first crash.
set -euo pipefail
# Usage: scripts/fuzz.sh [BUILD] [SECONDS] [TARGET...]   (no TARGET: every fuzz_* of BUILD)
build=${1:-build-fuzz}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$0")/.."
shopt -s nullglob
if (($#)); then targets=("${@/#/$build/}"); else targets=("$build"/fuzz_*); fi
((${#targets[@]})) || { echo "fuzz: no targets in $build"; exit 1; }
for t in "${targets[@]}"; do
  name=$(basename "$t")
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
  # fuzz_http's server threads finish a request (log line, counters) after the client has read
  # the answer, so libFuzzer's per-input leak check would see their live allocations as leaks;
  # leaks there are caught by the sanitizer suite's server tests instead.
  extra=()
  [ "$name" = fuzz_http ] && extra=(-detect_leaks=0)
  echo "fuzz: $name for ${seconds}s"
  mkdir -p "$build/fuzz-artifacts/$name"
  # UBSan only prints by default and the run would pass: halt, so libFuzzer keeps the input.
  LSAN_OPTIONS=suppressions=$PWD/tests/data/text/lsan-espeak.supp \
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$t" "${extra[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$name/" "$work" 2>"$build/fuzz-$name.log" || {
      tail -40 "$build/fuzz-$name.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E "stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" \
    "$build/fuzz-$name.log" | sed "s/^/  $name /"
  # The last status line: coverage (cov), features (ft) and the corpus size.
  grep -E "^#[0-9]+" "$build/fuzz-$name.log" | tail -1 | sed "s/^/  $name /"
  rm -rf "$work"
done
