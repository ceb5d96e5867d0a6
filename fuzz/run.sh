#!/usr/bin/env bash
# make fuzz: builds the libFuzzer harnesses with clang (ASan+UBSan everywhere, so the
# libraries are instrumented too) and runs each for FUZZ_SECONDS (default 60),
# growing fuzz/corpus/<name>/ in a scratch copy. New interesting inputs are not
# committed automatically: copy the ones worth keeping into fuzz/corpus/<name>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-$root/build-fuzz}
CC=clang cmake -S "$root" -B "$build" -DP11N_FUZZ=ON -DP11N_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_frame fuzz_request fuzz_csv
for name in frame request csv; do
  work="$build/corpus-$name"
  mkdir -p "$work"
  cp -n "$root/fuzz/corpus/$name/"* "$work/" 2>/dev/null || true
  echo "== fuzz_$name for ${seconds}s"
  (cd "$build" && "./fuzz/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 "$work" 2>&1 |
     grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added|Done)' | tail -4)
done
