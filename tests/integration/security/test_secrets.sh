#!/usr/bin/env bash
# Secret hygiene: a debug-level p11netd is driven through successes and failures
# (right and wrong PINs, throttling, batches, DECRYPT outputs, binary inputs, bad
# ciphertexts, too-long inputs, a server-held PIN, TLS) with distinctive PINs and
# plaintexts; then none of them may appear in the server's log, no PIN in any
# client output, and no plaintext in the clients' stderr (decrypt's stdout is its
# job). Also: the running server has a zero core-size limit and is non-dumpable.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../client/lib.sh"
. "$here/lib.sh"

make_tokens
make_pki
MOD=${P11NET_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PIN=Zq8rightPINkiwi4417
SPIN=Hv5serverPINlemon2290
softhsm2-util --init-token --free --label SecTok --so-pin 0000 --pin "$PIN" >/dev/null || { echo "init SecTok" >&2; exit 1; }
pkcs11-tool --module "$MOD" --token-label SecTok --login --pin "$PIN" --keypairgen --key-type rsa:2048 \
  --label seckey --id 77 >/dev/null 2>&1 || { echo "keygen SecTok" >&2; exit 1; }
softhsm2-util --init-token --free --label SrvTok --so-pin 0000 --pin "$SPIN" >/dev/null || exit 1
pkcs11-tool --module "$MOD" --token-label SrvTok --login --pin "$SPIN" --keypairgen --key-type EC:prime256v1 \
  --label srvkey --id 78 >/dev/null 2>&1 || exit 1
printf '%s\n' "$SPIN" >"$T/srv.pin"; chmod 600 "$T/srv.pin"

WRONG=(Xw3wrongPINmango1 Xw3wrongPINmango2 Xw3wrongPINmango3 Xw3wrongPINmango4 Xw3wrongPINmango5)
PT=(PTsecretAlpha7731 PTbatchBravo8842 PTbatchCharlie9953 PTbinaryDelta1064 PTrunEcho2175 PTlongFoxtrot3286)
B64_DELTA=$(printf '%s' "${PT[3]}" | base64 -w0)
: >"$T/client.out"; : >"$T/client.err"
c() { "$P11NET" "$@" >>"$T/client.out" 2>>"$T/client.err"; }

start_server $(tls_server_args) --log-level debug --token-pin "SrvTok=$T/srv.pin" --throttle-burst 3 --throttle-rate 1 --throttle-period 3600
TC=$(as client1)

# /proc: core size 0 and not dumpable (the kernel hands /proc/PID to root then).
grep -qE "^Max core file size +0 +0 " "/proc/$SERVER_PID/limits" && pass "core size limit 0" || fail "core limit: $(grep core "/proc/$SERVER_PID/limits")"
# Not dumpable: the kernel gives a non-dumpable process's /proc/PID files to root.
# That shows only when it runs as another user, so (as root) a second server runs
# as nobody, next to a control process of nobody's whose files stay nobody's.
if [ "$(id -u)" -ne 0 ]; then
  [ "$(stat -c %u "/proc/$SERVER_PID/environ")" = 0 ] && pass "server is not dumpable" || fail "server is dumpable"
else
  chmod 755 "$T"; chmod -R a+rwX "$T/hsm"
  setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 & CTRL=$!
  setpriv --reuid=65534 --regid=65534 --clear-groups "$P11NETD" --listen 127.0.0.1:0 --module "$MOD" 2>"$T/nobody.log" &
  NPID=$!
  if timeout 30 tail -n +1 -f "$T/nobody.log" | grep -m1 -q "listening on"; then
    [ "$(stat -c %u "/proc/$CTRL/environ")" = 65534 ] && pass "control: a dumpable process of nobody owns its /proc files" \
      || fail "control process files not nobody's"
    [ "$(stat -c %u "/proc/$NPID/environ")" = 0 ] && pass "server is not dumpable (/proc/PID owned by root)" \
      || fail "server is dumpable"
  else
    fail "p11netd as nobody did not start: $(head -3 "$T/nobody.log")"
  fi
  kill "$NPID" "$CTRL" 2>/dev/null; wait "$NPID" "$CTRL" 2>/dev/null
fi

c ping $TC
c list $TC
c list $TC --token SecTok --pin "$PIN"
c sign $TC --token SecTok --pin "$PIN" "${PT[0]}"
sig=$(tail -n 1 "$T/client.out")
c verify $TC --token SecTok --pin "$PIN" --sig "$sig" "${PT[0]}" || true
c encrypt $TC --token SecTok --pin "$PIN" "${PT[0]}" "${PT[1]}" "${PT[2]}"
mapfile -t cts < <(tail -n 3 "$T/client.out")
"$P11NET" decrypt $TC --token SecTok --pin "$PIN" "${cts[@]}" >"$T/decrypted" 2>>"$T/client.err"
grep -qx "${PT[1]}" "$T/decrypted" && pass "batch decrypt works (the plaintexts come back)" || fail "batch decrypt: $(cat "$T/decrypted")"
c encrypt $TC --token SecTok --pin "$PIN" --binary "$B64_DELTA"
ct=$(tail -n 1 "$T/client.out")
"$P11NET" decrypt $TC --token SecTok --pin "$PIN" --binary "$ct" >"$T/decrypted.bin" 2>>"$T/client.err"
grep -q "$B64_DELTA" "$T/decrypted.bin" && pass "binary decrypt works" || fail "binary decrypt"
c decrypt $TC --token SecTok --pin "$PIN" "$(printf 'not a ciphertext %s' "${PT[0]}" | base64 -w0)"
c encrypt $TC --token SecTok --pin "$PIN" "$(printf "${PT[5]}%.0s" $(seq 40))"
c sign $TC --token SrvTok "${PT[0]}" --pin ""
c sign $TC --token SrvTok --pin "${WRONG[4]}" "${PT[0]}"
# Burst 3 at 1/s: of 8 wrong tries in a row some are THROTTLED unless each took >1 s.
for w in "${WRONG[@]:0:4}" "${WRONG[@]:0:4}"; do c sign $TC --token SecTok --pin "$w" "${PT[0]}" "${PT[1]}"; done
c decrypt $TC --token SecTok --pin "$PIN" "${cts[0]}"   # throttled by now
grep -q "THROTTLED" "$T/client.err" && pass "the throttled path was exercised" || fail "no THROTTLED seen"
grep -q "PIN_INCORRECT" "$T/client.err" && pass "the wrong-PIN path was exercised" || fail "no PIN_INCORRECT seen"
grep -q "DATA_INVALID" "$T/client.err" && pass "the bad-input path was exercised" || fail "no DATA_INVALID seen"
cat >"$T/secret.csv" <<CSV
Encrypt,SecTok,$PIN,${PT[4]}
Decrypt,SecTok,$PIN,${PT[4]}
Sign,SecTok,$PIN,${PT[4]}
Verify,SecTok,$PIN,${PT[4]}
Sign,SecTok,${WRONG[0]},${PT[4]}
Sign,SrvTok,,${PT[4]}
List,SecTok,$PIN,
CSV
"$P11NET" run -n 2 $(as client2) "$T/secret.csv" >"$T/run.out" 2>"$T/run.err"
grep -q "lost=0" "$T/run.out" && pass "run with secrets: lost=0" || fail "run: $(tail -1 "$T/run.out")"

stop_server
wait # the copier of the server's stderr has written everything
grep -q "conn=.*op=DECRYPT" "$T/server.log" && pass "server logged at debug level" || fail "no debug lines in the log"
for s in "$PIN" "$SPIN" "${WRONG[@]}" "${PT[@]}" "$B64_DELTA"; do
  if grep -qF -- "$s" "$T/server.log"; then fail "server log holds secret $s"; grep -F -- "$s" "$T/server.log" | head -3 >&2
  else pass "server log free of $s"; fi
done
for s in "$PIN" "$SPIN" "${WRONG[@]}"; do
  if grep -qF -- "$s" "$T/client.out" "$T/client.err" "$T/run.out" "$T/run.err" "$T/decrypted" "$T/decrypted.bin"; then
    fail "client output holds PIN $s"; else pass "client outputs free of PIN $s"; fi
done
for s in "${PT[@]}" "$B64_DELTA"; do
  if grep -qF -- "$s" "$T/client.err" "$T/run.err"; then fail "client stderr holds plaintext $s"; else pass "client stderr free of $s"; fi
done
finish
