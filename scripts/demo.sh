#!/usr/bin/env bash
# make demo: tokens in a project-local directory, p11netd on a free port, the
# example requests file played by 4 concurrent clients, the summary, server stopped.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/.demo"
clients=${P11NET_DEMO_CLIENTS:-4}

echo "== creating SoftHSM tokens in $demo (nothing system-wide)"
eval "$("$root/scripts/mktokens.sh" "$demo")"
export SOFTHSM2_CONF

echo "== starting p11netd"
log="$demo/p11netd.log"
: >"$log"
# Read the server's stderr until its "listening on" line (an event, not a guessed
# sleep), then keep copying the rest into the log.
coproc SERVER { exec "$root/$build/src/server/p11netd" --listen 127.0.0.1:0 2>&1; }
server=$SERVER_PID
trap 'kill $server 2>/dev/null || true' EXIT
addr=""
while IFS= read -r -t 30 line <&"${SERVER[0]}"; do
  echo "$line" >>"$log"
  case $line in *"listening on "*) addr=$(sed 's/.*listening on \([^ ]*\).*/\1/' <<<"$line"); break ;; esac
done
[ -n "$addr" ] || { echo "p11netd did not start" >&2; cat "$log" >&2; exit 1; }
# Coproc descriptors are not inherited by background jobs: hand over a copy.
exec 3<&"${SERVER[0]}"
cat <&3 >>"$log" &
exec 3<&-
echo "   p11netd listening on $addr (log: $log)"

echo "== p11net list (tokens)"
"$root/$build/src/client/p11net" list --server "$addr"

echo "== p11net run -n $clients examples/requests.csv"
set +e
"$root/$build/src/client/p11net" run -n "$clients" --server "$addr" "$root/examples/requests.csv"
status=$?
set -e

kill -TERM $server
wait $server 2>/dev/null || true
trap - EXIT
echo "== p11netd stopped; the failed requests above are the file's deliberate errors (wrong token, wrong PIN)"
exit $status
