#!/usr/bin/env bash
# Plaintext on a non-loopback address is refused (exit 2, a message) unless
# --insecure; TLS on it, loopback and Unix sockets need nothing.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../client/lib.sh"
. "$here/lib.sh"

make_tokens
make_pki
start_server_expect_fail "plaintext on 0.0.0.0 refused" --listen 0.0.0.0:0
expect_grep "refusing plaintext on non-loopback address 0.0.0.0:0" "$T/err" "... with the reason"
start_server_expect_fail "plaintext on [::] refused" --listen "[::]:0"
start_server_expect_fail "plaintext on 0.0.0.0 refused next to a loopback listener" \
  --listen 127.0.0.1:0 --listen 0.0.0.0:0

start_server --listen 0.0.0.0:0 --insecure
wait_log "listening on 0.0.0.0:" "--insecure allows plaintext on 0.0.0.0"
stop_server
start_server --listen 0.0.0.0:0 $(tls_server_args)
wait_log "listening on 0.0.0.0:" "TLS on 0.0.0.0 needs no --insecure"
stop_server
start_server --listen "unix:$T/p11netd.sock"
expect_status 0 "Unix socket listener needs no --insecure" "$P11NET" ping --server "unix:$T/p11netd.sock"
stop_server
finish
