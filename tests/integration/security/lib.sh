# Helpers for the security integration tests (sourced after ../client/lib.sh,
# whose start_server, expect_status, expect_grep and summary_field they use).
# Nothing here sleeps: servers are awaited through their "listening on" line.

# make_pki: the test PKI of scripts/mkcerts.sh in $T/pki; sets PKI.
make_pki() {
  PKI=$T/pki
  "$P11NET_SOURCE_DIR/scripts/mkcerts.sh" "$PKI" >/dev/null || { echo "mkcerts.sh failed" >&2; exit 1; }
}

# TLS server options (mutual TLS against $PKI/ca.pem).
tls_server_args() { echo --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" --tls-ca "$PKI/ca.pem"; }
# as NAME: client options presenting NAME's certificate (client1, client2, rogue, expired).
as() { echo --tls-ca "$PKI/ca.pem" --tls-cert "$PKI/$1.pem" --tls-key "$PKI/$1.key"; }

# play NAME FILE [CLIENT OPTIONS...]: plays the requests FILE from one client,
# one request at a time, output in $T/play.NAME; lines then read with code_of.
play() {
  local name=$1 file=$2
  shift 2
  "$P11NET" run -n 1 --pipeline 1 "$@" "$file" >"$T/play.$name" 2>"$T/play.$name.err"
}

# code_of NAME LINENO: "ok" or the error code of the reply to line LINENO.
code_of() {
  local l
  l=$(grep -E "^client=0 line=$2 " "$T/play.$1")
  case $l in
    *" ok ms="*) echo ok ;;
    *" code="*) l=${l##* code=}; echo "${l%% *}" ;;
    *) echo none ;;
  esac
}

# expect_code NAME LINENO WANT DESC
expect_code() {
  local got
  got=$(code_of "$1" "$2")
  if [ "$got" = "$3" ]; then pass "$4"; else fail "$4: line $2 got $got, wanted $3"; cat "$T/play.$1" >&2; fi
}

# start_server_expect_fail DESC ARGS...: p11netd must exit 2 with a message on stderr.
start_server_expect_fail() {
  local desc=$1 st
  shift
  timeout 60 "${P11NETD_WRAPPER:-$P11NETD}" --module "${P11NET_MODULE:-/usr/lib/softhsm/libsofthsm2.so}" "$@" >"$T/out" 2>"$T/err" </dev/null
  st=$?
  if [ "$st" -eq 2 ] && [ -s "$T/err" ]; then pass "$desc (exit 2: $(head -1 "$T/err"))"; else
    fail "$desc: exit $st, wanted 2 with a message"; head -5 "$T/err" >&2
  fi
}

# wait_log PATTERN DESC: waits (at most 30 s, on the log growing, not on a timer)
# until the server log has a line matching PATTERN.
wait_log() {
  if timeout 30 tail -n +1 -f "$T/server.log" | grep -m1 -qE -- "$1"; then pass "$2"; else fail "$2: /$1/ never logged"; fi
}
