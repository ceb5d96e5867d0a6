#!/usr/bin/env bash
# Test PKI for TLS in DIR (for tests and demos, never for production):
#   ca.pem/ca.key            test CA
#   server.pem/server.key    server certificate for localhost and 127.0.0.1, from ca
#   client1.pem/.key         client "client1" (SAN email client1@p11net.test), from ca
#   client2.pem/.key         client "client2" (SAN DNS client2.p11net.test), from ca
#   other-ca.pem/.key        a second CA, and rogue.pem/.key, a client "client1" from it
#   expired.pem/.key         client "client1" from ca, expired
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

ca() { # NAME SUBJECT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -days 3650 -subj "$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}
leaf() { # NAME CA CN SAN EKU [DAYS_OFFSET_ARGS...]
  local name=$1 issuer=$2 cn=$3 san=$4 eku=$5
  shift 5
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$cn" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\n' "$san" "$eku" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial -out "$name.pem" \
    -extfile "$name.ext" "$@" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca ca "/CN=p11net test CA"
ca other-ca "/CN=p11net other CA"
leaf server ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth -days 825
leaf client1 ca client1 "email:client1@p11net.test" clientAuth -days 825
leaf client2 ca client2 "DNS:client2.p11net.test" clientAuth -days 825
leaf rogue other-ca client1 "email:client1@p11net.test" clientAuth -days 825
# Expired: -days -1 puts notAfter a day before notBefore, so it is expired from birth
# (OpenSSL 3.0 has no -not_after to pick dates directly).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout expired.key -out expired.csr \
  -subj "/CN=client1" 2>/dev/null
openssl x509 -req -in expired.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out expired.pem -days -1 2>/dev/null
rm -f expired.csr ./*.srl
chmod 644 ./*.pem
echo "certificates in $(pwd)"
