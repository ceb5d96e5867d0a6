#!/usr/bin/env bash
# make check-all: what does not fit CI's budget. The integration tests once more with
# p11netd under valgrind memcheck (no errors, nothing definitely lost), then a
# longer fuzz round. make test (normal + ASan/UBSan + short fuzz) has already run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Its own build: the same code, with test timeouts long enough for valgrind.
build=build-valgrind
cmake -S "$root" -B "$root/$build" -DP11N_TEST_TIMEOUT=3600 >/dev/null
cmake --build "$root/$build" -j "$(nproc)"
wrapper=$(mktemp /tmp/p11netd-valgrind-XXXXXX)
logs=$(mktemp -d /tmp/p11net-valgrind-XXXXXX)
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --suppressions=$root/tests/valgrind.supp --log-file=$logs/vg-%p.log "$root/$build/src/server/p11netd" "\$@"
WRAP
chmod +x "$wrapper"
echo "== integration tests with p11netd under valgrind (logs in $logs)"
(cd "$root/$build" && P11NETD_WRAPPER="$wrapper" P11NET_CHURN_SECONDS=2 ctest -L integration -E 'client\.' --output-on-failure)
bad=$(grep -l -E 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$logs"/vg-*.log || true)
if [ -n "$bad" ]; then echo "valgrind found problems:"; cat $bad; exit 1; fi
echo "valgrind: no errors, nothing definitely lost ($(ls "$logs" | wc -l) server runs)"
rm -f "$wrapper"
echo "== fuzzing, 5 minutes per harness"
FUZZ_SECONDS=${FUZZ_SECONDS:-300} bash "$root/fuzz/run.sh"
