#!/usr/bin/env bash
# make bench: one markdown table, every figure from this run on this machine.
#
#   bash bench/run.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# Environment:
#   BENCH_SECONDS   seconds per row (default 3)
#   BENCH_CONNS     idle connections for the memory rows (default 10000)
#   BENCH_QUICK=1   only the rows that targets are checked on
#
# Sections: (1) the ceiling, PKCS#11 in-process (bench/p11_inproc); (2) p11-kit's RPC
# forwarding of the same module, driven by the same program; (3) p11net over TCP
# loopback (and TLS when `p11net bench` supports it); (4) request overhead, p11net
# ping beside redis-benchmark ping; (5) p11netd's memory with many idle
# connections; (6) the targets, each pair measured alternately; (7) the default
# server against the single event loop it replaced (--io-threads 1 --no-inline).
# The "target" column says whether the issue's targets are met.
# Progress goes to stderr, the table to stdout. Everything started here is stopped
# here; the exit status is 0 unless the harness itself failed.
set -euo pipefail

build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) B=$build ;; *) B=$root/$build ;; esac
secs=${BENCH_SECONDS:-3}
nconns=${BENCH_CONNS:-10000}
quick=${BENCH_QUICK:-0}
ncpu=$(nproc)
module=/usr/lib/softhsm/libsofthsm2.so
p11kit_client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
inproc=$B/bench/p11_inproc
idle=$B/bench/idle_conns
p11net=$B/src/client/p11net
p11netd=$B/src/server/p11netd

for f in "$inproc" "$idle" "$p11net" "$p11netd"; do
  [ -x "$f" ] || { echo "bench: $f is missing (build first: make build)" >&2; exit 1; }
done

# Many connections need many descriptors; children (p11netd, the helpers) inherit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/p11net-bench.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
log() { echo "bench: $*" >&2; }

log "tokens in $tmp (scripts/mktokens.sh)"
eval "$("$root/scripts/mktokens.sh" "$tmp/hsm")"
export SOFTHSM2_CONF

# start_p11netd NAME ARGS...: starts p11netd on a free loopback port and waits for
# its "listening on HOST:PORT" line; sets srv_pid and srv_addr.
start_p11netd() {
  local name=$1 line
  shift
  mkfifo "$tmp/$name.fifo"
  "$p11netd" --listen 127.0.0.1:0 --log-level warn "$@" 2>"$tmp/$name.fifo" &
  srv_pid=$!
  pids+=("$srv_pid")
  exec {srv_fd}<"$tmp/$name.fifo"
  srv_addr=""
  while IFS= read -r -t 30 line <&"$srv_fd"; do
    echo "$line" >>"$tmp/$name.log"
    case $line in *"listening on "*) srv_addr=$(sed 's/.*listening on \([^ ]*\).*/\1/' <<<"$line"); break ;; esac
  done
  [ -n "$srv_addr" ] || { echo "bench: p11netd ($name) did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
  cat <&"$srv_fd" >>"$tmp/$name.log" &
  pids+=("$!")
  exec {srv_fd}<&-
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Results, by row key.
declare -A RATE P50 P99 CPU NOTE
rows=()          # "key|section|what|config"

# cpu_ticks PID: user+system clock ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# record KEY SECTION WHAT CONFIG LINE [CPU%]: LINE is a bench summary line.
record() {
  local key=$1 line=$5
  rows+=("$1|$2|$3|$4")
  RATE[$key]=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$line")
  P50[$key]=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  P99[$key]=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  CPU[$key]=${6:-}
  [ -n "${RATE[$key]}" ] || { RATE[$key]=0; NOTE[$key]="failed: ${line:-no output}"; }
  log "$(printf '%-12s %-34s %s' "$2" "$4" "$line")"
}

# run_cmd: runs "$@", prints its last stdout line (or the error) and never fails.
last_line() {
  local out
  out=$("$@" 2>"$tmp/last.err" | tail -n 1) || true
  if [ -z "$out" ] || ! grep -q 'rate=' <<<"$out"; then out="error: $(tail -n 1 "$tmp/last.err")"; fi
  echo "$out"
}

# ---- 1. ceiling: PKCS#11 in-process --------------------------------------------------
for mech in rsa ecdsa; do
  for t in 1 "$ncpu"; do
    line=$(last_line "$inproc" --module "$module" --token MyToken --pin 1234 --mech "$mech" --threads "$t" --seconds "$secs")
    record "inproc_${mech}_$t" "1 ceiling" "in-process PKCS#11, $([ $mech = rsa ] && echo RSA-2048 sign || echo ECDSA P-256)" "$t thread(s), own sessions" "$line"
  done
done

# ---- 2. p11-kit RPC forwarding ---------------------------------------------------------
log "starting p11-kit server"
p11kit_env=$(p11-kit server --sh -n "$tmp/p11kit.sock" --provider "$module" "pkcs11:token=MyToken" 2>"$tmp/p11kit.log") || {
  log "p11-kit server failed: $(cat "$tmp/p11kit.log")"
  p11kit_env=""
}
if [ -n "$p11kit_env" ]; then
  eval "$p11kit_env"
  pids+=("$P11_KIT_SERVER_PID")
  export P11_KIT_SERVER_ADDRESS
  kit() { # KEY MECH THREADS PROCS CONFIG
    local line
    line=$(last_line "$inproc" --module "$p11kit_client" --token MyToken --pin 1234 --mech "$2" --threads "$3" --procs "$4" --seconds "$secs")
    record "$1" "2 p11-kit" "p11-kit RPC, $([ "$2" = rsa ] && echo RSA-2048 sign || echo ECDSA P-256)" "$5" "$line"
  }
  kit kit_rsa_c1 rsa 1 1 "1 connection"
  kit kit_rsa_t$ncpu rsa "$ncpu" 1 "1 connection, $ncpu threads"
  kit "kit_rsa_c$ncpu" rsa 1 "$ncpu" "$ncpu connections"
  kit kit_rsa_c16 rsa 1 16 "16 connections"
  kit kit_ec_c1 ecdsa 1 1 "1 connection"
  kit kit_ec_c16 ecdsa 1 16 "16 connections"
  kit_addr=$P11_KIT_SERVER_ADDRESS
  unset P11_KIT_SERVER_ADDRESS
fi

# ---- 3. p11net -------------------------------------------------------------------------
start_p11netd plain
plain_pid=$srv_pid plain_addr=$srv_addr
log "p11netd listening on $plain_addr"

# nb KEY SECTION WHAT CONFIG [p11net bench options...]
nb() {
  local key=$1 section=$2 what=$3 config=$4 line c0 c1 t0 t1 cpu
  shift 4
  c0=$(cpu_ticks "$bench_pid")
  t0=$(date +%s%N)
  line=$(last_line "$p11net" bench --server "$bench_addr" --duration "$secs" "$@")
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$bench_pid")
  cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", 100 * c / hz / (ns / 1e9)}')
  record "$key" "$section" "$what" "$config" "$line" "$cpu"
}
sign_rsa=(--op sign --token MyToken --pin 1234 --key TestKey --mech rsa-pkcs)
sign_ec=(--op sign --token MyToken --pin 1234 --key EcKey --mech ecdsa-sha256)

bench_pid=$plain_pid bench_addr=$plain_addr
if [ "$quick" = 1 ]; then
  conn_list="1 16"; pipe_list="1"; batch_list="1"
else
  conn_list="1 $ncpu 16 256"; pipe_list="1 8"; batch_list="1 16"
fi
for c in $conn_list; do
  for p in $pipe_list; do
    for b in $batch_list; do
      if [ "$c" = "$ncpu" ] && { [ "$p" != 1 ] || [ "$b" != 1 ]; }; then continue; fi
      if [ $((c * p * b)) -gt 4096 ]; then
        # 256 x 8 x 16 = 32768 signatures queued: one round takes longer than a row.
        rows+=("rsa_c${c}_p${p}_b${b}|3 p11net TCP|p11net, RSA-2048 sign|$c conn, pipeline $p, batch $b")
        RATE["rsa_c${c}_p${p}_b${b}"]=""
        NOTE["rsa_c${c}_p${p}_b${b}"]="skipped: $((c * p * b)) signatures in flight, one round > ${secs}s"
        continue
      fi
      nb "rsa_c${c}_p${p}_b${b}" "3 p11net TCP" "p11net, RSA-2048 sign" "$c conn, pipeline $p, batch $b" \
        "${sign_rsa[@]}" -c "$c" -p "$p" -b "$b"
    done
  done
done
nb ec_c1_p1_b1 "3 p11net TCP" "p11net, ECDSA P-256 sign" "1 conn, pipeline 1, batch 1" "${sign_ec[@]}" -c 1
[ "$quick" = 1 ] || nb "ec_c${ncpu}_p1_b1" "3 p11net TCP" "p11net, ECDSA P-256 sign" "$ncpu conn, pipeline 1, batch 1" "${sign_ec[@]}" -c "$ncpu"
nb ec_c16_p1_b1 "3 p11net TCP" "p11net, ECDSA P-256 sign" "16 conn, pipeline 1, batch 1" "${sign_ec[@]}" -c 16
if [ "$quick" != 1 ]; then
  nb ec_c16_p8_b16 "3 p11net TCP" "p11net, ECDSA P-256 sign" "16 conn, pipeline 8, batch 16" "${sign_ec[@]}" -c 16 -p 8 -b 16
  nb ec_c256_p1_b1 "3 p11net TCP" "p11net, ECDSA P-256 sign" "256 conn, pipeline 1, batch 1" "${sign_ec[@]}" -c 256
fi

# ---- 4. request overhead: ping beside redis-benchmark ------------------------------------
for c in 1 16 50 256; do
  # One client thread, as redis-benchmark has by default.
  nb "ping_c$c" "4 ping" "p11net bench --op ping --threads 1" "$c conn, pipeline 1" --op ping -c "$c" --threads 1
done
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$tmp/redis.log" --dir "$tmp" &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
for c in 1 16 50 256; do
  # Sized from p11net's own ping rate, so that each takes about BENCH_SECONDS.
  n=$(awk -v r="${RATE[ping_c$c]:-0}" -v s="$secs" 'BEGIN{n = int(r * s); if (n < 20000) n = 20000; print n}')
  c0=$(cpu_ticks "$redis_pid")
  t0=$(date +%s%N)
  csv=$(redis-benchmark -h 127.0.0.1 -p "$rport" -t ping -c "$c" -n "$n" -P 1 --csv 2>/dev/null | grep PING_MBULK || true)
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$redis_pid")
  cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", 100 * c / hz / (ns / 1e9)}')
  # "PING_MBULK","rps","avg","min","p50","p95","p99","max"
  line=$(awk -F'"' -v n="$n" '{printf "ops=%d errors=0 rate=%s p50_ms=%s p99_ms=%s", n, $4, $10, $14}' <<<"$csv")
  record "redis_c$c" "4 ping" "redis-benchmark -t ping (PING_MBULK)" "$c conn, -P 1, -n $n" "$line" "$cpu"
done

# ---- 3b. TLS, when the client has it ------------------------------------------------------
tls_note=""
if "$p11net" bench --help 2>&1 | grep -q 'TLS (not supported yet)'; then
  tls_note="TLS rows skipped: p11net bench does not support --tls-* yet"
else
  bash "$root/scripts/mkcerts.sh" "$tmp/pki" >/dev/null
  start_p11netd tls --tls-cert "$tmp/pki/server.pem" --tls-key "$tmp/pki/server.key"
  tls_pid=$srv_pid tls_addr=$srv_addr
  probe=$(last_line "$p11net" bench --server "$tls_addr" --tls-ca "$tmp/pki/ca.pem" --op ping -d 0.3)
  if grep -q 'rate=' <<<"$probe"; then
    bench_pid=$tls_pid bench_addr=$tls_addr
    tls=(--tls-ca "$tmp/pki/ca.pem")
    for c in 1 16 256; do
      nb "tls_rsa_c$c" "3 p11net TLS" "p11net TLS 1.3, RSA-2048 sign" "$c conn, pipeline 1, batch 1" "${tls[@]}" "${sign_rsa[@]}" -c "$c"
    done
    nb tls_rsa_c16_p8_b16 "3 p11net TLS" "p11net TLS 1.3, RSA-2048 sign" "16 conn, pipeline 8, batch 16" "${tls[@]}" "${sign_rsa[@]}" -c 16 -p 8 -b 16
    for c in 1 50 256; do
      nb "tls_ping_c$c" "3 p11net TLS" "p11net TLS 1.3, ping" "$c conn, pipeline 1" "${tls[@]}" --op ping -c "$c"
    done
  else
    tls_note="TLS rows skipped: p11net bench over TLS failed ($probe)"
  fi
  stop_pid "$tls_pid"
fi
[ -z "$tls_note" ] || log "$tls_note"

# ---- 6. the targets, measured back to back --------------------------------------------
# This machine may be shared, and load from elsewhere moves every figure above. So
# each target compares two configurations measured alternately, A B A B ..., over
# BENCH_TARGET_ROUNDS rounds (default 2), using the mean of each.
rounds=${BENCH_TARGET_ROUNDS:-2}
redis_line() { # CONNS N
  local csv
  csv=$(redis-benchmark -h 127.0.0.1 -p "$rport" -t ping -c "$1" -n "$2" -P 1 --csv 2>/dev/null | grep PING_MBULK || true)
  awk -F'"' -v n="$2" '{printf "ops=%d errors=0 rate=%s p50_ms=%s p99_ms=%s", n, $4, $10, $14}' <<<"$csv"
}
m_ceiling() { last_line "$inproc" --module "$module" --token MyToken --pin 1234 --mech rsa --threads "$ncpu" --seconds "$secs"; }
m_kit() { # MECH PROCS [THREADS]
  if [ -z "${kit_addr:-}" ]; then echo "error: no p11-kit server"; return; fi
  P11_KIT_SERVER_ADDRESS=$kit_addr last_line "$inproc" --module "$p11kit_client" --token MyToken --pin 1234 \
    --mech "$1" --procs "$2" --threads "${3:-1}" --seconds "$secs"
}
m_net() { last_line "$p11net" bench --server "$plain_addr" --duration "$secs" "$@"; }
m_redis50() { redis_line 50 "$(awk -v r="${RATE[redis_c50]:-50000}" -v s="$secs" 'BEGIN{n = int(r * s); if (n < 20000) n = 20000; print n}')"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
declare -A T_RATE_A T_RATE_B T_P50_B T_P99_B
trows=()
# pair KEY WHAT CONFIG "A cmd" "B cmd": B is p11net's side.
pair() {
  local key=$1 a=$4 b=$5 la lb ra=0 rb=0 p50=0 p99=0 i
  for i in $(seq "$rounds"); do
    la=$(eval "$a")
    lb=$(eval "$b")
    log "$(printf '%-12s %-34s A: %s' "6 target" "$3" "$la")"
    log "$(printf '%-12s %-34s B: %s' "6 target" "$3" "$lb")"
    ra=$(awk -v s="$ra" -v x="$(field rate "$la")" 'BEGIN{print s + x}')
    rb=$(awk -v s="$rb" -v x="$(field rate "$lb")" 'BEGIN{print s + x}')
    p50=$(awk -v s="$p50" -v x="$(field p50_ms "$lb")" 'BEGIN{print s + x}')
    p99=$(awk -v s="$p99" -v x="$(field p99_ms "$lb")" 'BEGIN{print s + x}')
  done
  T_RATE_A[$key]=$(awk -v s="$ra" -v n="$rounds" 'BEGIN{printf "%.1f", s / n}')
  T_RATE_B[$key]=$(awk -v s="$rb" -v n="$rounds" 'BEGIN{printf "%.1f", s / n}')
  T_P50_B[$key]=$(awk -v s="$p50" -v n="$rounds" 'BEGIN{printf "%.3f", s / n}')
  T_P99_B[$key]=$(awk -v s="$p99" -v n="$rounds" 'BEGIN{printf "%.3f", s / n}')
  trows+=("$key|$2|$3|${pair_section:-6 targets}")
}
pair t_ceiling "p11net RSA-2048 sign vs in-process ceiling ($ncpu threads)" "16 conn, pipeline 1, batch 1" \
  m_ceiling 'm_net "${sign_rsa[@]}" -c 16'
pair t_kit_rsa1 "p11net vs p11-kit, RSA-2048 sign" "1 connection" 'm_kit rsa 1' 'm_net "${sign_rsa[@]}" -c 1'
# p11-kit's "1 connection, N threads" is N requests in flight on one connection.
pair "t_kit_rsa1t$ncpu" "p11net vs p11-kit, RSA-2048 sign" "1 connection, $ncpu in flight (p11-kit: $ncpu threads)" \
  "m_kit rsa 1 $ncpu" "m_net \"\${sign_rsa[@]}\" -c 1 -p $ncpu"
pair "t_kit_rsa$ncpu" "p11net vs p11-kit, RSA-2048 sign" "$ncpu connections" "m_kit rsa $ncpu" \
  "m_net \"\${sign_rsa[@]}\" -c $ncpu"
pair t_kit_rsa16 "p11net vs p11-kit, RSA-2048 sign" "16 connections" 'm_kit rsa 16' 'm_net "${sign_rsa[@]}" -c 16'
pair t_kit_ec1 "p11net vs p11-kit, ECDSA P-256 sign" "1 connection" 'm_kit ecdsa 1' 'm_net "${sign_ec[@]}" -c 1'
pair t_kit_ec16 "p11net vs p11-kit, ECDSA P-256 sign" "16 connections" 'm_kit ecdsa 16' 'm_net "${sign_ec[@]}" -c 16'
pair t_ping50 "p11net ping vs redis-benchmark ping" "50 connections, pipeline 1, one client thread each" m_redis50 \
  'm_net --op ping -c 50 --threads 1'

# ---- 7. reactors against the single event loop they replaced ----------------------------
# `--io-threads 1 --no-inline` is the design before reactors (src/server/reactor.h):
# one loop thread, every HSM call in the pool. Same build, same tokens, alternately.
start_p11netd single --io-threads 1 --no-inline
single_pid=$srv_pid single_addr=$srv_addr
m_single() { last_line "$p11net" bench --server "$single_addr" --duration "$secs" "$@"; }
pair_section="7 reactors"
for c in 1 "$ncpu" 16; do
  pair "r_rsa$c" "p11netd default vs one loop (--io-threads 1 --no-inline), RSA-2048 sign" "$c conn, pipeline 1" \
    "m_single \"\${sign_rsa[@]}\" -c $c" "m_net \"\${sign_rsa[@]}\" -c $c"
done
pair r_rsa1p8 "p11netd default vs one loop (--io-threads 1 --no-inline), RSA-2048 sign" "1 conn, pipeline 8" \
  'm_single "${sign_rsa[@]}" -c 1 -p 8' 'm_net "${sign_rsa[@]}" -c 1 -p 8'
for c in 1 16; do
  pair "r_ec$c" "p11netd default vs one loop (--io-threads 1 --no-inline), ECDSA P-256 sign" "$c conn, pipeline 1" \
    "m_single \"\${sign_ec[@]}\" -c $c" "m_net \"\${sign_ec[@]}\" -c $c"
done
pair_section="6 targets"
stop_pid "$single_pid"

stop_pid "$plain_pid"
stop_pid "$redis_pid"
[ -z "${P11_KIT_SERVER_PID:-}" ] || stop_pid "$P11_KIT_SERVER_PID"

# ---- 5. memory with idle connections --------------------------------------------------
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
start_p11netd mem
mem_pid=$srv_pid mem_addr=$srv_addr
"$p11net" ping --server "$mem_addr" >/dev/null 2>&1 || true
rss0=$(rss_kib "$mem_pid")
mkfifo "$tmp/idle.in"
"$idle" 127.0.0.1 "${mem_addr##*:}" "$nconns" <"$tmp/idle.in" >"$tmp/idle.out" 2>"$tmp/idle.err" &
idle_pid=$!
pids+=("$idle_pid")
exec {idle_in}>"$tmp/idle.in"
# Wait (bounded) for the helper's report line: all connections open and served.
for _ in $(seq 600); do
  grep -q '^connected=' "$tmp/idle.out" 2>/dev/null && break
  kill -0 "$idle_pid" 2>/dev/null || break
  sleep 0.1
done
idle_line=$(cat "$tmp/idle.out" 2>/dev/null || true)
served=$(sed -n 's/.*served=\([0-9]*\).*/\1/p' <<<"$idle_line")
served=${served:-0}
rss1=$(rss_kib "$mem_pid")
echo >&"$idle_in"
exec {idle_in}>&-
wait "$idle_pid" 2>/dev/null || true
stop_pid "$mem_pid"
per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$served" 'BEGIN{ if (n > 0) printf "%.2f", (b - a) / n; else print "n/a" }')
log "memory: idle RSS ${rss0} KiB, with $served connections ${rss1} KiB ($idle_line $(tail -n 1 "$tmp/idle.err" 2>/dev/null))"

# ---- the table ------------------------------------------------------------------------
ge() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a + 0 >= b + 0)}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
verdict() { if "$@"; then echo "met"; else echo "NOT met"; fi; }

# verdict of section 6 rows: KEY -> text
target_of() {
  local key=$1 a=${T_RATE_A[$1]} b=${T_RATE_B[$1]}
  case $key in
    t_ceiling)
      echo "ceiling ${a}/s; ≥ 90%: $(pct "$b" "$a") $(verdict ge "$b" "$(awk -v c="$a" 'BEGIN{print 0.9 * c}')"); p99 ≤ 2×p50: $(verdict ge "$(awk -v x="${T_P50_B[$key]}" 'BEGIN{print 2 * x}')" "${T_P99_B[$key]}")" ;;
    t_ping50) echo "redis-benchmark ${a}/s; p11net ≥ redis: $(pct "$b" "$a") $(verdict ge "$b" "$a")" ;;
    r_*) echo "one loop ${a}/s; default: $(pct "$b" "$a") of it" ;;
    *) echo "p11-kit ${a}/s; p11net ≥ p11-kit: $(pct "$b" "$a") $(verdict ge "$b" "$a")" ;;
  esac
}

echo
echo "p11net bench, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m), $ncpu cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo),"
echo "${secs}s per row, SoftHSM $(softhsm2-util --version 2>/dev/null || echo '?'), build $build. srv CPU: the serving process (p11netd or redis-server), % of one core."
echo
echo "| section | measurement | configuration | ops/s | p50 ms | p99 ms | srv CPU | target |"
echo "|---|---|---|---:|---:|---:|---:|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r key section what config <<<"$r"
  rate=${RATE[$key]:-}
  if [ -n "${NOTE[$key]:-}" ]; then
    echo "| $section | $what | $config | — | — | — | — | ${NOTE[$key]} |"
    continue
  fi
  echo "| $section | $what | $config | $(printf '%.0f' "$rate") | ${P50[$key]} | ${P99[$key]} | ${CPU[$key]:+${CPU[$key]}%} | — |"
done
for r in "${trows[@]}"; do
  IFS='|' read -r key what config section <<<"$r"
  echo "| $section | $what | $config; back to back ×$rounds | $(printf '%.0f' "${T_RATE_B[$key]}") | ${T_P50_B[$key]} | ${T_P99_B[$key]} | | $(target_of "$key") |"
done
mem_target="≤ 16 KiB/conn: $( [ "$per_conn" != n/a ] && verdict ge 16 "$per_conn" || echo "NOT met"); $nconns served: $(verdict [ "$served" -ge "$nconns" ])"
echo "| 5 memory | p11netd VmRSS idle | fresh server, 1 ping | — | — | — | — | ${rss0} KiB |"
echo "| 5 memory | p11netd VmRSS, $nconns idle plaintext conns | served $served/$nconns | — | — | — | — | ${rss1} KiB |"
echo "| 5 memory | per idle connection | (RSS$nconns − RSS idle) / $served | — | — | — | — | ${per_conn} KiB: $mem_target |"
[ -z "$tls_note" ] || { echo; echo "Note: $tls_note."; }
exit 0
