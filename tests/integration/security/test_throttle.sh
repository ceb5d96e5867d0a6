#!/usr/bin/env bash
# PIN throttling (burst 3, rate 1/s): three wrong PINs in quick succession are
# PIN_INCORRECT, the fourth request for that token is THROTTLED whatever PIN it
# carries, other tokens and other identities are unaffected, and a new connection
# of the same identity stays throttled. Refill over time is a unit test
# (tests/unit/test_access.c, test clock). Then the defaults: 64 clients behind
# one address with one wrong PIN each are never throttled.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../client/lib.sh"
. "$here/lib.sh"

make_tokens
make_pki

# ---- plaintext: the identity is the peer address --------------------------------
start_server --throttle-burst 3 --throttle-rate 1 --throttle-period 3600
cat >"$T/guess.csv" <<'CSV'
Sign,MyToken,0001,a
Sign,MyToken,0002,a
Sign,MyToken,0003,a
Sign,MyToken,0004,a
Sign,MyToken,1234,a
List,MyToken,1234,
Encrypt,MyToken,1234,a
Sign,Token2,5678,a
Sign,Token2,0000,a
List,,,
Ping,,,
CSV
play g "$T/guess.csv"
for l in 1 2 3; do expect_code g $l PIN_INCORRECT "wrong PIN $l: PIN_INCORRECT"; done
expect_code g 4 THROTTLED "wrong PIN 4: THROTTLED"
expect_code g 5 THROTTLED "right PIN while throttled: THROTTLED (checked before the PIN)"
expect_code g 6 THROTTLED "LIST keys while throttled: THROTTLED"
expect_code g 7 THROTTLED "ENCRYPT while throttled: THROTTLED"
expect_code g 8 ok "another token (Token2) unaffected"
expect_code g 9 PIN_INCORRECT "Token2 wrong PIN: PIN_INCORRECT (its own allowance)"
expect_code g 10 ok "LIST tokens (no PIN) unaffected"
expect_code g 11 ok "ping unaffected"
stop_server

# ---- mutual TLS: the identity is the certificate ----------------------------------
start_server $(tls_server_args) --throttle-burst 3 --throttle-rate 1 --throttle-period 3600
play t1 "$T/guess.csv" $(as client1)
expect_code t1 4 THROTTLED "TLS client1: 4th wrong PIN THROTTLED"
printf 'Sign,MyToken,1234,a\n' >"$T/one.csv"
play t2 "$T/one.csv" $(as client2)
expect_code t2 1 ok "TLS client2 (same address, other certificate) not throttled"
play t3 "$T/one.csv" $(as client1)
expect_code t3 1 THROTTLED "TLS client1 on a new connection still THROTTLED"
stop_server

# ---- defaults: run -n 64 from one address is never throttled ----------------------
start_server
expect_status 0 "run -n 64 examples/requests.csv with default throttling" \
  "$P11NET" run -n 64 "$P11NET_SOURCE_DIR/examples/requests.csv"
[ "$(summary_field lost "$T/out")" = 0 ] && pass "run -n 64: lost=0" || fail "run -n 64: $(tail -1 "$T/out")"
expect_no_grep "THROTTLED" "$T/out" "run -n 64: no THROTTLED"
n=$(grep -c "code=PIN_INCORRECT" "$T/out")
[ "$n" -eq 64 ] && pass "run -n 64: 64 PIN_INCORRECT (one per client)" || fail "run -n 64: $n PIN_INCORRECT"
stop_server
finish
