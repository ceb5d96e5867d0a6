#!/usr/bin/env bash
# Installs every Debian package p11net needs to build, test, fuzz, benchmark and
# run its demo. This is the one list: CI runs it on a fresh machine, so a package
# missing here fails there. Idempotent: it installs only what is missing, and uses
# sudo only when not already root.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang
  # chosen libraries
  libuv1-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler libp11-kit-dev
  # tests: the real PKCS#11 module and its tools, unit test framework
  softhsm2 opensc libcmocka-dev openssl
  # sanitizers and fuzzing with clang (libFuzzer runtime, LeakSanitizer)
  libclang-rt-14-dev llvm
  # benchmarks: p11-kit's RPC server and client module, redis for the ping reference
  p11-kit p11-kit-modules redis-server redis-tools
  # reliability checks
  valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
