#!/usr/bin/env bash
# TLS: handshakes that must succeed and fail (client cert missing, from another
# CA, expired; server name wrong on the client side), a plaintext client on a TLS
# port, garbage before and after the handshake (the server survives and keeps
# serving others), and `run`/`bench` over TLS.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../client/lib.sh"
. "$here/lib.sh"

make_tokens
make_pki
start_server $(tls_server_args) --log-level debug
PORT=${SERVER##*:}

expect_status 0 "mutual TLS with client1" "$P11NET" ping $(as client1)
expect_grep "pong" "$T/out" "ping answered over TLS"
expect_status 0 "mutual TLS with client2, name localhost" "$P11NET" ping --server "localhost:$PORT" $(as client2)
expect_status 0 "--tls-servername localhost on an IP address" "$P11NET" ping $(as client1) --tls-servername localhost
expect_status 0 "sign over TLS" "$P11NET" sign $(as client1) --token MyToken --pin 1234 "hello tls"

expect_status 1 "no client certificate is refused" "$P11NET" ping --tls-ca "$PKI/ca.pem"
expect_grep "certificate required" "$T/err" "... with a TLS alert"
expect_status 1 "certificate from another CA is refused" "$P11NET" ping $(as rogue)
expect_grep "unknown ca" "$T/err" "... unknown ca"
expect_status 1 "expired certificate is refused" "$P11NET" ping $(as expired)
expect_grep "expired" "$T/err" "... certificate expired"
expect_status 1 "wrong server name is refused by the client" "$P11NET" ping $(as client1) --tls-servername other.p11net.test
expect_grep "hostname mismatch" "$T/err" "... hostname mismatch"
expect_status 1 "server not from the client's CA is refused" \
  "$P11NET" ping --tls-ca "$PKI/other-ca.pem" --tls-cert "$PKI/client1.pem" --tls-key "$PKI/client1.key"
expect_grep "certificate verify failed" "$T/err" "... certificate verify failed"
expect_status 1 "plaintext client on the TLS port gets no answer" "$P11NET" ping --timeout 5
expect_status 1 "TLS to a unix: address is refused" "$P11NET" ping --server unix:/nonexistent $(as client1)
expect_grep "not used on unix" "$T/err" "... with a reason"

# Garbage from raw sockets: before any handshake, after a complete handshake (as
# frames and as raw bytes under the TLS layer), and a handshake cut off halfway.
python3 - "$PORT" "$PKI" >"$T/garbage.out" 2>&1 <<'PY'
import os, socket, ssl, struct, sys
port, pki = int(sys.argv[1]), sys.argv[2]
def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(pki + "/ca.pem")
    c.load_cert_chain(pki + "/client1.pem", pki + "/client1.key")
    return c
def drained(s):
    s.settimeout(10)
    try:
        while s.recv(65536): pass
    except (ConnectionResetError, ssl.SSLError, OSError):
        pass
    return True
# 1. garbage instead of a ClientHello: the server must close the connection.
s = socket.create_connection(("127.0.0.1", port)); s.sendall(os.urandom(4096) + b"GET / HTTP/1.0\r\n\r\n"); drained(s); s.close()
print("before: closed")
# 2. half a ClientHello, then close.
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"); s.close()
print("half: done")
# 3. after the handshake, a frame body that is not a ProtoMessage: BAD_REQUEST, stays open.
t = ctx().wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
t.sendall(struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
hdr = t.recv(4); n = struct.unpack(">I", hdr)[0]; body = b""
while len(body) < n: body += t.recv(n - len(body))
print("after-frame: reply", len(body), "bytes")
# then a frame length far over --max-frame: one TOO_LARGE error frame, then close.
t.sendall(b"\x7f\xff\xff\xff" + os.urandom(64)); drained(t); t.close()
print("after-oversize: closed")
# 4. after the handshake, raw garbage under TLS (a bad record): the server closes.
t = ctx().wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
os.write(t.fileno(), b"\x17\x03\x03\x00\x20" + os.urandom(32))  # under the TLS layer
drained(t); t.close()
print("after-record: closed")
PY
st=$?
if [ $st -eq 0 ]; then pass "garbage clients handled ($(tr '\n' ';' <"$T/garbage.out"))"; else fail "garbage script: $(cat "$T/garbage.out")"; fi
expect_grep "after-frame: reply" "$T/garbage.out" "BAD_REQUEST answered over TLS"
expect_status 0 "server still serves after the garbage" "$P11NET" sign $(as client2) --token Token2 --pin 5678 "still here"
kill -0 "$SERVER_PID" 2>/dev/null && pass "server alive" || fail "server died"
wait_log "tls_error" "server logged the TLS errors"

expect_status 0 "run -n 8 over TLS" "$P11NET" run -n 8 -q $(as client1) "$P11NET_SOURCE_DIR/examples/requests.csv"
[ "$(summary_field lost "$T/out")" = 0 ] && pass "run over TLS: lost=0" || fail "run over TLS: $(tail -1 "$T/out")"
[ "$(summary_field ok "$T/out")" -gt 0 ] && pass "run over TLS: ok>0" || fail "run over TLS: ok=0"
expect_status 0 "bench ping over TLS" "$P11NET" bench --op ping --connections 2 --pipeline 4 --duration 2 $(as client1)
expect_grep "^ops=[1-9]" "$T/out" "bench over TLS counted operations"
expect_grep "errors=0 " "$T/out" "bench over TLS without errors"
expect_status 1 "bench with an untrusted certificate fails" "$P11NET" bench --op ping --connections 1 --duration 0.2 $(as rogue)

stop_server
finish
