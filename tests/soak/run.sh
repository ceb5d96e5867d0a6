#!/usr/bin/env bash
# make soak: 1,000,000 requests from 500 connections (the mixed file, pipelined),
# while a second client keeps connecting and being killed mid-run (abrupt
# disconnects). Reports lost requests, p11netd's resident memory over time (flat
# after warm-up is the goal) and its open descriptors before and after.
# SOAK_CLIENTS, SOAK_REPEAT scale it (500 x 16 lines x 125 = 1,000,000).
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cli="$root/$build/src/client/p11net"
clients=${SOAK_CLIENTS:-500}
repeat=${SOAK_REPEAT:-125}
work=$(mktemp -d /tmp/p11net-soak-XXXXXX)
trap 'kill $server $sampler $chaos 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)"

eval "$("$root/scripts/mktokens.sh" "$work")"
export SOFTHSM2_CONF
coproc SERVER { exec "$root/$build/src/server/p11netd" --listen 127.0.0.1:0 --log-level warn 2>&1; }
server=$SERVER_PID
addr=""
while IFS= read -r -t 30 line <&"${SERVER[0]}"; do
  case $line in *"listening on "*) addr=$(sed 's/.*listening on \([^ ]*\).*/\1/' <<<"$line"); break ;; esac
done
[ -n "$addr" ] || { echo "p11netd did not start" >&2; exit 1; }
# Coproc descriptors are not inherited by background jobs: hand over a copy.
exec 3<&"${SERVER[0]}"
cat <&3 >"$work/server.log" &
exec 3<&-

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }
fds_before=$(fds)
echo "soak: $clients clients x $(grep -cv '^#' "$root/tests/soak/mixed.csv") lines x $repeat against $addr; fds before: $fds_before"

# Memory sampler: one line every 5 s.
( while kill -0 $server 2>/dev/null; do echo "$(date +%s) $(rss)"; read -r -t 5 <> <(:) || true; done ) >"$work/rss" &
sampler=$!
# Chaos: clients killed while they have requests in flight.
( while [ ! -e "$work/stop" ]; do timeout -s KILL 0.7 "$cli" run -q -n 20 --pipeline 8 --repeat 1000 --server "$addr" \
    "$root/tests/soak/mixed.csv" >/dev/null 2>&1 || true; done ) 2>/dev/null &
chaos=$!

start=$(date +%s)
set +e
"$cli" run -q -n "$clients" --pipeline 4 --repeat "$repeat" --timeout 120 --server "$addr" "$root/tests/soak/mixed.csv" | tail -n 1
status=${PIPESTATUS[0]}
set -e
# Stop the chaos loop and wait for its last client, whose connections would
# otherwise still be open when descriptors are counted.
touch "$work/stop"
wait $chaos 2>/dev/null || true
# Each ping is a loop turn of the server, which sees the last closes along the way.
for _ in $(seq 1 100); do
  "$cli" ping --server "$addr" >/dev/null
  [ "$(fds)" -le "$fds_before" ] && break
done
echo "elapsed: $(( $(date +%s) - start )) s, run exit status $status"
echo "fds: before $fds_before, after $(fds)"
echo "rss kB over time (after the first 3 samples of warm-up):"
tail -n +4 "$work/rss" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "  min %d  median %d  max %d  (%d samples)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'
echo "errors in the server log: $(grep -c ' error ' "$work/server.log" || true)"
exit $status
