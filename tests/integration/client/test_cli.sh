#!/usr/bin/env bash
# Every p11net subcommand against a real p11netd: results, input and output
# forms, exit statuses (0 ok, 1 failure, 2 bad usage), --help, and that a PIN
# never shows in the output.
. "$(dirname "$0")/lib.sh"
make_tokens
start_server

TOK=(--token MyToken --pin 1234)

# --help on every subcommand, bad usage
for cmd in ping list sign verify encrypt decrypt run bench; do
  expect_status 0 "$cmd --help" "$P11NET" "$cmd" --help
  expect_grep "Usage: p11net $cmd" "$T/out" "$cmd --help prints usage"
  expect_status 2 "$cmd with an unknown option" "$P11NET" "$cmd" --no-such-option
done
expect_status 0 "p11net --help" "$P11NET" --help
expect_status 2 "no command" "$P11NET"
expect_status 2 "unknown command" "$P11NET" frobnicate
expect_status 2 "sign without a token" "$P11NET" sign --pin 1234 data
expect_status 2 "sign without a PIN" env -u P11NET_PIN "$P11NET" sign --token MyToken data
expect_status 2 "--slot and --token" "$P11NET" sign --slot 1 --token MyToken --pin 1 data
expect_status 2 "unknown mechanism" "$P11NET" sign "${TOK[@]}" --mech rsa-foo data
expect_status 2 "verify without --sig" "$P11NET" verify "${TOK[@]}" data
expect_status 2 "bad --timeout" "$P11NET" ping --timeout abc

# ping and list
expect_status 0 "ping" "$P11NET" ping
expect_status 0 "ping, server from --server" env -u P11NET_SERVER "$P11NET" ping --server "$SERVER"
expect_status 1 "ping, nobody listening" "$P11NET" ping --server unix:$T/nothing.sock
expect_status 0 "list tokens" "$P11NET" list
expect_grep '^SlotID:[0-9]+, Token: MyToken$' "$T/out" "list shows MyToken"
expect_grep 'Token: Token3$' "$T/out" "list shows Token3"
SLOT=$(sed -n 's/^SlotID:\([0-9]*\), Token: Token2$/\1/p' "$T/out")
expect_status 0 "list keys" "$P11NET" list "${TOK[@]}"
expect_grep '^Key: TestKey, ID: 01, Class: private, Type: RSA-2048$' "$T/out" "list keys shows TestKey"
expect_grep '^Key: EcKey, ID: 11, Class: public, Type: EC-P256$' "$T/out" "list keys shows EcKey"
expect_status 1 "list keys with a wrong PIN" "$P11NET" list --token MyToken --pin 9999
expect_grep 'PIN_INCORRECT' "$T/err" "wrong PIN reported as PIN_INCORRECT"
expect_no_grep '9999' "$T/err" "wrong PIN not echoed"

# sign / verify: operand, file, stdin, --out, --binary, mechanisms, PIN sources
expect_status 0 "sign" "$P11NET" sign "${TOK[@]}" "hello, world"
SIG=$(cat "$T/out")
expect_status 0 "verify" "$P11NET" verify "${TOK[@]}" --sig "$SIG" "hello, world"
expect_grep '^valid$' "$T/out" "verify prints valid"
expect_status 1 "verify a wrong message" "$P11NET" verify "${TOK[@]}" --sig "$SIG" "hello, World"
expect_grep 'SIGNATURE_INVALID' "$T/err" "bad signature is SIGNATURE_INVALID"
printf 'hello, world' >"$T/msg"
expect_status 0 "sign --in FILE --out FILE" "$P11NET" sign "${TOK[@]}" --in "$T/msg" --out "$T/sig.bin"
expect_status 0 "verify --in FILE --sig-file FILE" "$P11NET" verify "${TOK[@]}" --in "$T/msg" --sig-file "$T/sig.bin"
expect_status 0 "verify from stdin" sh -c "\"$P11NET\" verify --token MyToken --pin 1234 --sig '$SIG' < '$T/msg'"
expect_status 0 "sign --binary (base64 operand)" "$P11NET" sign "${TOK[@]}" --binary "aGVsbG8sIHdvcmxk"
[ "$(cat "$T/out")" = "$SIG" ] && pass "binary and text inputs give the same signature" || fail "binary and text inputs give the same signature"
printf '1234\n' >"$T/pin"
expect_status 0 "--pin-file with a trailing newline" "$P11NET" sign --token MyToken --pin-file "$T/pin" x
expect_status 0 "P11NET_PIN" env P11NET_PIN=1234 "$P11NET" sign --token MyToken x
expect_status 0 "sign by --slot" "$P11NET" sign --slot "$SLOT" --pin 5678 x
expect_status 0 "sign a batch" "$P11NET" sign "${TOK[@]}" one two three
[ "$(wc -l <"$T/out")" -eq 3 ] && pass "batch of 3 gives 3 signatures" || fail "batch of 3 gives 3 signatures"
for mech in sha256-rsa-pkcs sha256-rsa-pkcs-pss; do
  expect_status 0 "sign --mech $mech" "$P11NET" sign "${TOK[@]}" --mech "$mech" msg
  S=$(cat "$T/out")
  expect_status 0 "verify --mech $mech" "$P11NET" verify "${TOK[@]}" --mech "$mech" --sig "$S" msg
done
expect_status 0 "sign --key EcKey --mech ecdsa-sha256" "$P11NET" sign "${TOK[@]}" --key EcKey --mech ecdsa-sha256 msg
S=$(cat "$T/out")
expect_status 0 "verify ECDSA" "$P11NET" verify "${TOK[@]}" --key EcKey --mech ecdsa-sha256 --sig "$S" msg
expect_status 1 "sign with a missing key" "$P11NET" sign "${TOK[@]}" --key NoSuchKey msg
expect_grep 'KEY_NOT_FOUND' "$T/err" "missing key is KEY_NOT_FOUND"

# encrypt / decrypt: text, batch, raw bytes through files
expect_status 0 "encrypt" "$P11NET" encrypt --token Token2 --pin 5678 "secret, text"
CT=$(cat "$T/out")
expect_status 0 "decrypt" "$P11NET" decrypt --token Token2 --pin 5678 "$CT"
expect_grep '^secret, text$' "$T/out" "decrypt gives the plaintext back"
expect_status 0 "encrypt a batch" "$P11NET" encrypt --token Token3 --pin 3456 a b
mapfile -t CTS <"$T/out"
expect_status 0 "decrypt a batch" "$P11NET" decrypt --token Token3 --pin 3456 "${CTS[@]}"
[ "$(tr '\n' ' ' <"$T/out")" = "a b " ] && pass "batch decrypt in order" || fail "batch decrypt in order"
head -c 100 /dev/urandom >"$T/rand"
expect_status 0 "encrypt --in binary --out" "$P11NET" encrypt "${TOK[@]}" --in "$T/rand" --out "$T/ct.bin"
expect_status 0 "decrypt --in --out" "$P11NET" decrypt "${TOK[@]}" --in "$T/ct.bin" --out "$T/back"
cmp -s "$T/rand" "$T/back" && pass "binary round trip" || fail "binary round trip"
expect_status 0 "decrypt --binary prints base64" "$P11NET" decrypt --token Token2 --pin 5678 --binary "$CT"
expect_grep '^c2VjcmV0LCB0ZXh0$' "$T/out" "decrypt --binary output is base64 of the plaintext"
expect_status 1 "decrypt garbage" "$P11NET" decrypt "${TOK[@]}" "AAAA"
expect_status 1 "encrypt on a missing token" "$P11NET" encrypt --token NoSuchToken --pin 1 x
expect_grep 'NO_SUCH_SLOT' "$T/err" "missing token is NO_SUCH_SLOT"

# TLS options (tests/integration/security/test_tls.sh covers TLS itself)
expect_status 1 "--tls-ca with a file that holds no CA" "$P11NET" ping --tls-ca /dev/null
expect_grep 'TLS: cannot load CA' "$T/err" "clear TLS message"

# bench: every op, the summary line, a failing bench
for op in ping list sign verify encrypt decrypt; do
  expect_status 0 "bench --op $op" "$P11NET" bench --op "$op" "${TOK[@]}" -c 4 -p 2 --duration 1
  expect_grep '^ops=[1-9][0-9]* errors=0 rate=[0-9.]+ p50_ms=[0-9.]+ p90_ms=[0-9.]+ p99_ms=[0-9.]+ p999_ms=[0-9.]+$' "$T/out" "bench $op summary line"
done
expect_status 0 "bench batch of 16" "$P11NET" bench --op encrypt "${TOK[@]}" -c 2 -p 1 --batch 16 --duration 1
OPS=$(summary_field ops "$T/out")
[ $((OPS % 16)) -eq 0 ] && [ "$OPS" -gt 0 ] && pass "bench counts operations per batch item" || fail "bench ops=$OPS not a multiple of 16"
# Three connections over two threads (2 + 1): exit 0 means none failed or was lost
# (bench exits 1 then), and the one summary line adds both threads up.
expect_status 0 "bench over two threads" "$P11NET" bench --op sign "${TOK[@]}" -c 3 -p 2 --threads 2 --duration 1
expect_grep '^ops=[1-9][0-9]* errors=0 rate=[0-9.]+ ' "$T/out" "bench over two threads: summary line"
expect_status 2 "bench --threads 0" "$P11NET" bench --threads 0
expect_status 1 "bench with a wrong PIN" "$P11NET" bench --op sign --token MyToken --pin 0000 --duration 0.2
expect_status 2 "bench verify batch" "$P11NET" bench --op verify "${TOK[@]}" --batch 2
expect_status 2 "bench sign without token" "$P11NET" bench --op sign --pin 1234
expect_status 1 "bench, nobody listening" "$P11NET" bench --server unix:$T/nothing.sock --duration 0.2

# No PIN in anything printed above (the last command's output, and a run file).
for pin in 1234 5678 3456; do expect_no_grep "$pin" "$T/out" "PIN $pin not in stdout"; done

stop_server
finish
