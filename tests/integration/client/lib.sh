# Shared helpers for the p11net command-line integration tests (sourced).
# Environment (set by CTest): P11NETD, P11NET_CLI, P11NET_SOURCE_DIR.
# Starts nothing by itself; each test calls start_server. Waits on events (the
# server's "listening on" line, process exits), never on sleeps.
set -u

: "${P11NETD:?P11NETD not set}" "${P11NET_CLI:?P11NET_CLI not set}" "${P11NET_SOURCE_DIR:?}"
P11NET=$P11NET_CLI
T=$(mktemp -d /tmp/p11net-cli-it.XXXXXX)
SERVER_PID=
FAILS=0

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
  fi
  if [ -n "${P11NET_KEEP_TMP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }
finish() {
  if [ "$FAILS" -ne 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi
  echo "all checks passed"; exit 0
}

# make_tokens: the prototype's three tokens in $T/hsm (scripts/mktokens.sh).
make_tokens() {
  "$P11NET_SOURCE_DIR/scripts/mktokens.sh" "$T/hsm" >/dev/null || { echo "mktokens.sh failed" >&2; exit 1; }
  export SOFTHSM2_CONF=$T/hsm/softhsm2.conf
}

# start_server [ARGS...]: p11netd on 127.0.0.1:0; sets SERVER_PID and SERVER
# (HOST:PORT) from its "listening on" line, read through a FIFO with a deadline.
start_server() {
  local fifo=$T/server.fifo line
  rm -f "$fifo"; mkfifo "$fifo"
  "${P11NETD_WRAPPER:-$P11NETD}" --listen 127.0.0.1:0 --module "${P11NET_MODULE:-/usr/lib/softhsm/libsofthsm2.so}" "$@" 2>"$fifo" &
  SERVER_PID=$!
  exec 9<"$fifo"
  SERVER=
  while IFS= read -r -t 30 line <&9; do
    echo "$line" >>"$T/server.log"
    case $line in *"listening on "*) SERVER=${line##*listening on }; SERVER=${SERVER%% *}; break ;; esac
  done
  if [ -z "$SERVER" ]; then echo "p11netd did not start" >&2; cat "$T/server.log" >&2; exit 1; fi
  # Keep draining its stderr so the server never blocks on a full pipe.
  cat <&9 >>"$T/server.log" &
  exec 9<&-
  export P11NET_SERVER=$SERVER
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}

# expect_status WANT DESC CMD...: runs CMD (stdout in $T/out, stderr in $T/err)
# and checks its exit status.
expect_status() {
  local want=$1 desc=$2 st
  shift 2
  "$@" >"$T/out" 2>"$T/err"; st=$?
  if [ "$st" -eq "$want" ]; then pass "$desc"; else
    fail "$desc: exit $st, wanted $want"; sed 's/^/  stdout: /' "$T/out" | head -5 >&2; sed 's/^/  stderr: /' "$T/err" | head -5 >&2
  fi
}

# expect_grep PATTERN FILE DESC
expect_grep() { if grep -qE -- "$1" "$2"; then pass "$3"; else fail "$3: /$1/ not in $2"; head -5 "$2" >&2; fi; }
expect_no_grep() { if grep -qE -- "$1" "$2"; then fail "$3: /$1/ found in $2"; else pass "$3"; fi; }

# summary_field NAME FILE: a field of the last line (key=value ...).
summary_field() { tail -n 1 "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
