#!/usr/bin/env bash
# `p11net run` against a real p11netd: the summary line and its counts (ok,
# failed, lost), exit statuses, each client's Decrypt/Verify bookkeeping with
# and without pipelining, --repeat, -q, and bad usage (exit 2 with FILE:LINE).
. "$(dirname "$0")/lib.sh"
make_tokens
start_server
EX=$P11NET_SOURCE_DIR/examples/requests.csv
SUMMARY='^requests=[0-9]+ ok=[0-9]+ failed=[0-9]+ lost=[0-9]+ elapsed_s=[0-9.]+ rate=[0-9.]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+$'

# check_counts DESC REQUESTS OK FAILED LOST: the summary in $T/out.
check_counts() {
  local got
  got="$(summary_field requests "$T/out") $(summary_field ok "$T/out") $(summary_field failed "$T/out") $(summary_field lost "$T/out")"
  [ "$got" = "$2 $3 $4 $5" ] && pass "$1 counts" || fail "$1 counts: got '$got', wanted '$2 $3 $4 $5'"
}

# The example file: 17 requests per client, 2 deliberate failures.
expect_status 0 "run -n 3 examples/requests.csv" "$P11NET" run -n 3 "$EX"
expect_grep "$SUMMARY" <(tail -n 1 "$T/out") "summary is the last line"
check_counts "examples" 51 45 6 0
[ "$(grep -c '^client=' "$T/out")" -eq 51 ] && pass "one line per reply" || fail "one line per reply"
expect_grep 'op=Encrypt slot=NoSuchToken failed .*code=NO_SUCH_SLOT' "$T/out" "wrong slot line fails with NO_SUCH_SLOT"
expect_grep 'op=Sign slot=Token2 failed .*code=PIN_INCORRECT' "$T/out" "wrong PIN line fails with PIN_INCORRECT"
expect_grep 'op=Decrypt slot=MyToken ok .*data=Hello, World!$' "$T/out" "decrypt of the client's own ciphertext"
for pin in 1234 5678 3456 0000; do expect_no_grep ",$pin,|=$pin( |$)" "$T/out" "PIN $pin not printed"; done

expect_status 0 "run with pipeline and repeat" "$P11NET" run -n 4 --pipeline 8 --repeat 3 -q "$EX"
check_counts "pipelined repeat" 204 180 24 0
[ "$(wc -l <"$T/out")" -eq 1 ] && pass "-q prints only the summary" || fail "-q prints only the summary"

# Bookkeeping: each Decrypt/Verify uses this client's own earlier result, waits
# for it under pipelining, and a mismatch or a missing result is a failure.
cat >"$T/deps.csv" <<'CSV'
# Decrypt before any Encrypt of that data: failed (nothing to decrypt)
Decrypt,MyToken,1234,never encrypted
Encrypt,MyToken,1234,alpha, with comma
Encrypt,Token2,5678,alpha, with comma
Sign,MyToken,1234,beta
Sign,Token3,0000,gamma
Decrypt,Token2,5678,alpha, with comma
Decrypt,MyToken,1234,alpha, with comma
Verify,MyToken,1234,beta
# Its Sign failed (wrong PIN): failed
Verify,Token3,3456,gamma
# Same data, other token: no Sign on Token2 of beta -> failed
Verify,Token2,5678,beta
# Decrypt with a wrong PIN of a good ciphertext: failed by the server
Decrypt,MyToken,9999,alpha, with comma
Encrypt,MyToken,1234,alpha, with comma
Decrypt,MyToken,1234,alpha, with comma
Ping,,,
CSV
# 14 requests: ok = Encrypt x3, Sign beta, Decrypt x3, Verify beta, Ping = 9; failed = 5
for p in 1 16; do
  expect_status 0 "dependency file, pipeline $p" "$P11NET" run -n 5 --pipeline $p "$T/deps.csv"
  check_counts "dependencies, pipeline $p" 70 45 25 0
  expect_grep 'line=2 op=Decrypt slot=MyToken failed .*no_earlier_Encrypt' "$T/out" "decrypt without an earlier encrypt (p=$p)"
  expect_grep 'line=11 op=Verify slot=Token3 failed .*earlier_Sign_failed' "$T/out" "verify whose sign failed (p=$p)"
  expect_no_grep 'mismatch' "$T/out" "no client decrypts another's ciphertext (p=$p)"
done
# --repeat: in the second pass the leading Decrypt finds the first pass's Encrypt.
printf 'Decrypt,MyToken,1234,wrap\nEncrypt,MyToken,1234,wrap\n' >"$T/wrap.csv"
expect_status 0 "wrap-around file, repeat 3" "$P11NET" run -n 2 --pipeline 4 --repeat 3 "$T/wrap.csv"
check_counts "wrap-around, repeat" 12 10 2 0

printf 'List,MyToken,1234,\nList,,,\nPing,,,\n' >"$T/list.csv"
expect_status 0 "list and ping lines" "$P11NET" run -n 2 "$T/list.csv"
check_counts "list and ping" 6 6 0 0
expect_grep 'op=List slot=MyToken ok .*Key: TestKey' "$T/out" "List,SLOT,PIN lists keys"

# Bad usage: exit 2, with FILE:LINE for a malformed line.
printf 'Ping,,,\n# fine\nEncrypt,MyToken\n' >"$T/bad.csv"
expect_status 2 "malformed line" "$P11NET" run -n 1 "$T/bad.csv"
expect_grep "bad.csv:3: " "$T/err" "malformed line reported as FILE:LINE"
printf 'Frobnicate,1,1,x\n' >"$T/bad2.csv"
expect_status 2 "unknown type" "$P11NET" run -n 1 "$T/bad2.csv"
expect_grep "bad2.csv:1: unknown Type" "$T/err" "unknown type reported with its line"
expect_status 2 "missing file" "$P11NET" run -n 1 "$T/nonexistent.csv"
expect_status 2 "no file" "$P11NET" run -n 1
expect_status 2 "-n 0" "$P11NET" run -n 0 "$EX"
expect_status 2 "-n not a number" "$P11NET" run -n many "$EX"
expect_status 2 "bad --pipeline" "$P11NET" run -n 1 --pipeline 0 "$EX"

# Nobody listening: every request is lost, exit 1, promptly.
expect_status 1 "no server" "$P11NET" run -n 2 --server unix:$T/nothing.sock "$EX"
check_counts "no server" 34 0 0 34

stop_server
finish
