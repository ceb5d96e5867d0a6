#!/usr/bin/env bash
# The ACL (--acl) and server-held PINs (--token-pin): who may use which token,
# UNAUTHORIZED before PIN_INCORRECT and THROTTLED, LIST filtered to the client's
# tokens, requests without a PIN allowed only to admitted identities while a PIN
# that is sent is still checked, and bad files refused at startup (exit 2).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../client/lib.sh"
. "$here/lib.sh"

make_tokens
make_pki
MOD=${P11NET_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

# ---- startup refusals ----------------------------------------------------------
printf 'client1 MyToken\n' >"$T/bad.acl"
start_server_expect_fail "ACL line without '='" --listen 127.0.0.1:0 --acl "$T/bad.acl"
grep -q "bad.acl:1" "$T/err" && pass "... names file and line" || fail "... message: $(cat "$T/err")"
printf 'client1 = MyToken,\n' >"$T/bad2.acl"
start_server_expect_fail "ACL with an empty label" --listen 127.0.0.1:0 --acl "$T/bad2.acl"
start_server_expect_fail "missing ACL file" --listen 127.0.0.1:0 --acl "$T/nonexistent.acl"
start_server_expect_fail "--token-pin with a missing file" --listen 127.0.0.1:0 --token-pin "MyToken=$T/nonexistent"
printf '9999\n' >"$T/wrong.pin"; chmod 600 "$T/wrong.pin"
start_server_expect_fail "--token-pin with a wrong PIN" --listen 127.0.0.1:0 --token-pin "MyToken=$T/wrong.pin"
grep -q "9999" "$T/err" && fail "... the wrong PIN is echoed" || pass "... without echoing the PIN"
printf '1234\n' >"$T/my.pin"; chmod 600 "$T/my.pin"
start_server_expect_fail "--token-pin for an unknown token" --listen 127.0.0.1:0 --token-pin "NoSuchToken=$T/my.pin"
printf '' >"$T/empty.pin"
start_server_expect_fail "--token-pin with an empty file" --listen 127.0.0.1:0 --token-pin "MyToken=$T/empty.pin"

# ---- ACL + server-held PIN for MyToken ----------------------------------------
cat >"$T/acl" <<'ACL'
# PROTOCOL.md section 7
client1@p11net.test = MyToken     # by email SAN
client2.p11net.test = Token2, Token3   # by DNS SAN
ACL
cp "$T/my.pin" "$T/world.pin"; chmod 644 "$T/world.pin"
start_server $(tls_server_args) --acl "$T/acl" --token-pin "MyToken=$T/world.pin" --throttle-burst 3 --throttle-rate 1 --throttle-period 3600
expect_grep "world.pin is accessible by group or others" "$T/server.log" "world-readable PIN file warned about (before listening)"

cat >"$T/c1.csv" <<'CSV'
Sign,MyToken,1234,one
Sign,MyToken,,two without a pin
Sign,MyToken,9999,three
Sign,Token2,5678,four
Sign,Token2,0000,five
Sign,Token2,0001,six
Sign,Token2,0002,seven
Sign,Token2,0003,eight
Sign,Token2,0004,nine
List,,,
List,Token2,5678,
Encrypt,MyToken,,eleven
List,Token3,3456,
CSV
play c1 "$T/c1.csv" $(as client1)
expect_code c1 1 ok "client1: MyToken with its PIN"
expect_code c1 2 ok "client1: MyToken without a PIN (server-held)"
expect_code c1 3 PIN_INCORRECT "client1: a wrong PIN that is sent is still checked"
expect_code c1 4 UNAUTHORIZED "client1: Token2 with the right PIN is UNAUTHORIZED"
expect_code c1 5 UNAUTHORIZED "client1: Token2 with a wrong PIN: UNAUTHORIZED, not PIN_INCORRECT"
for l in 6 7 8 9; do expect_code c1 $l UNAUTHORIZED "client1: wrong PIN #$((l - 4)) on Token2 never THROTTLED (burst 3)"; done
expect_code c1 10 ok "client1: LIST tokens"
grep -E "^client=0 line=10 " "$T/play.c1" >"$T/list1"
expect_grep "Token: MyToken" "$T/list1" "LIST shows client1's token"
expect_no_grep "Token2|Token3" "$T/list1" "LIST hides tokens client1 may not use"
expect_code c1 11 UNAUTHORIZED "client1: LIST keys of Token2 UNAUTHORIZED"
expect_code c1 12 ok "client1: ENCRYPT on MyToken without a PIN"
expect_code c1 13 UNAUTHORIZED "client1: LIST keys of Token3 UNAUTHORIZED"

cat >"$T/c2.csv" <<'CSV'
Sign,MyToken,,no pin
Sign,MyToken,1234,right pin
Sign,Token2,5678,ok
Sign,Token2,,no server pin for Token2
Sign,Token3,3456,ok
List,,,
CSV
play c2 "$T/c2.csv" $(as client2)
expect_code c2 1 UNAUTHORIZED "client2: MyToken without a PIN is UNAUTHORIZED (server PIN only for admitted)"
expect_code c2 2 UNAUTHORIZED "client2: MyToken with its right PIN is UNAUTHORIZED"
expect_code c2 3 ok "client2: Token2"
expect_code c2 4 PIN_INCORRECT "client2: Token2 without a PIN (no server PIN)"
expect_code c2 5 ok "client2: Token3"
grep -E "^client=0 line=6 " "$T/play.c2" >"$T/list2"
expect_grep "Token: Token2" "$T/list2" "LIST shows Token2 to client2"
expect_grep "Token: Token3" "$T/list2" "LIST shows Token3 to client2"
expect_no_grep "MyToken" "$T/list2" "LIST hides MyToken from client2"
stop_server

# ---- an identity no rule names may use nothing; '*' allows everything ------------
printf 'client1 = *\n' >"$T/acl2"   # by CN
start_server $(tls_server_args) --acl "$T/acl2"
cat >"$T/all.csv" <<'CSV'
Sign,MyToken,1234,a
Sign,Token2,5678,b
Sign,Token3,3456,c
List,,,
CSV
play a1 "$T/all.csv" $(as client1)
for l in 1 2 3 4; do expect_code a1 $l ok "client1 with '*': line $l"; done
play a2 "$T/all.csv" $(as client2)
for l in 1 2 3; do expect_code a2 $l UNAUTHORIZED "client2, in no rule: line $l UNAUTHORIZED"; done
grep -E "^client=0 line=4 " "$T/play.a2" >"$T/list3"
expect_no_grep "Token:" "$T/list3" "client2, in no rule: LIST shows no token"
stop_server

# ---- without --acl every client that passed the handshake may use every token --
start_server $(tls_server_args)
play n2 "$T/all.csv" $(as client2)
for l in 1 2 3; do expect_code n2 $l ok "no ACL: client2 line $l"; done
for tok in MyToken Token2 Token3; do expect_grep "line=4 .*Token: $tok" "$T/play.n2" "no ACL: LIST shows $tok"; done
stop_server
finish
