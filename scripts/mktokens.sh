#!/usr/bin/env bash
# Creates a project-local SoftHSM setup in DIR (nothing system-wide): its own
# softhsm2.conf and token directory, with the prototype's three tokens
#   MyToken  PIN 1234  RSA-2048 key pair TestKey (id 01), EC P-256 key pair EcKey (id 11)
#   Token2   PIN 5678  RSA-2048 key pair Key2 (id 02)
#   Token3   PIN 3456  RSA-2048 key pair Key3 (id 03)
# and exports each public key as DIR/pub/<label>.pem for independent checks.
# Prints the environment to export. Rerunning it recreates the tokens.
set -euo pipefail

dir=${1:?usage: mktokens.sh DIR}
module=${P11NET_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
so_pin=0000

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/tokens" "$dir/pub"
mkdir -p "$dir/tokens" "$dir/pub"
chmod 700 "$dir/tokens"
cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$dir/softhsm2.conf"

p11() { pkcs11-tool --module "$module" "$@" >/dev/null 2>&1; }

# mk_token LABEL PIN
mk_token() {
  softhsm2-util --init-token --free --label "$1" --so-pin "$so_pin" --pin "$2" >/dev/null
}
# mk_key TOKEN PIN KEYTYPE LABEL ID
mk_key() {
  p11 --token-label "$1" --login --pin "$2" --keypairgen --key-type "$3" --label "$4" --id "$5"
  p11 --token-label "$1" --login --pin "$2" --read-object --type pubkey --id "$5" \
      --output-file "$dir/pub/$4.der"
  local form=rsa
  case "$3" in EC:*) form=ec ;; esac
  openssl "$form" -pubin -inform DER -in "$dir/pub/$4.der" -out "$dir/pub/$4.pem" 2>/dev/null
}

mk_token MyToken 1234
mk_token Token2 5678
mk_token Token3 3456
mk_key MyToken 1234 rsa:2048 TestKey 01
mk_key MyToken 1234 EC:prime256v1 EcKey 11
mk_key Token2 5678 rsa:2048 Key2 02
mk_key Token3 3456 rsa:2048 Key3 03

echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
