#!/usr/bin/env bash
# A server that dies in the middle of `p11net run`: the run ends on its own (no
# hang), counts the unanswered requests as lost and exits 1. Also a server
# stopped with SIGTERM after the run: nothing lost.
. "$(dirname "$0")/lib.sh"
make_tokens
start_server

# Sign lines are slow enough (RSA-2048 in SoftHSM) that 4 clients x 2000 lines
# are far from done when the server is killed.
for i in $(seq 500); do echo "Sign,MyToken,1234,message $i"; echo "Ping,,,"; done >"$T/long.csv"

fifo=$T/run.fifo
mkfifo "$fifo"
timeout 120 "$P11NET" run -n 4 --pipeline 4 --timeout 20 "$T/long.csv" >"$fifo" 2>"$T/run.err" &
RUN_PID=$!
exec 8<"$fifo"
# Wait (on output, not on time) until 50 replies have come back, then kill -9.
n=0
while [ $n -lt 50 ] && IFS= read -r -t 60 line <&8; do n=$((n + 1)); echo "$line" >>"$T/run.out"; done
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
cat <&8 >>"$T/run.out"
exec 8<&-
wait "$RUN_PID"; st=$?
[ $n -eq 50 ] && pass "run made progress before the kill" || fail "only $n replies before the kill"
[ $st -eq 1 ] && pass "exit 1 when requests are lost" || fail "exit status $st, wanted 1 (124 = hang)"
cp "$T/run.out" "$T/out"
LOST=$(summary_field lost "$T/out")
REQ=$(summary_field requests "$T/out")
OK=$(summary_field ok "$T/out")
FAILED=$(summary_field failed "$T/out")
[ "$REQ" = 4000 ] && pass "requests counts every line of every client" || fail "requests=$REQ"
[ -n "$LOST" ] && [ "$LOST" -gt 0 ] && pass "lost=$LOST" || fail "nothing counted lost"
[ $((OK + FAILED + LOST)) -eq 4000 ] && pass "ok + failed + lost = requests" || fail "ok+failed+lost != requests"
expect_grep 'connection lost' "$T/run.err" "the lost connection is reported on stderr"

finish
