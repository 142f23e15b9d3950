#!/usr/bin/env bash
# Regenerates the JWT fixtures with the openssl CLI (an implementation independent of cpp-jwt).
# Output: rsa_public.pem, ec_public.pem, tokens.txt (NAME TOKEN per line). Private keys are
# thrown away. Long-lived tokens expire in 2100.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
b64u() { basenc --base64url -w0 | tr -d '='; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/rsa.pem" 2>/dev/null
openssl pkey -in "$tmp/rsa.pem" -pubout -out rsa_public.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ec.pem" 2>/dev/null
openssl pkey -in "$tmp/ec.pem" -pubout -out ec_public.pem
SECRET=unit-test-secret-of-at-least-32-bytes

hs256() {  # hs256 HEADER PAYLOAD HEXKEY
  local input; input="$(printf '%s' "$1" | b64u).$(printf '%s' "$2" | b64u)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$3" -binary | b64u)"
}
rs256() {
  local input; input="$(printf '%s' "$1" | b64u).$(printf '%s' "$2" | b64u)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$tmp/rsa.pem" -binary | b64u)"
}
es256() {  # DER ECDSA signature -> JOSE r||s (32 bytes each)
  local input; input="$(printf '%s' "$1" | b64u).$(printf '%s' "$2" | b64u)"
  printf '%s' "$input" | openssl dgst -sha256 -sign "$tmp/ec.pem" -binary > "$tmp/sig.der"
  local hex; hex=$(openssl asn1parse -inform DER -in "$tmp/sig.der" | awk -F: '/INTEGER/ {print $NF}' |
    while read -r n; do printf '%064s' "$n" | tr ' ' 0; done)
  printf '%s.%s' "$input" "$(printf '%s' "$hex" | xxd -r -p | b64u)"
}
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }

H='{"alg":"HS256","typ":"JWT"}'
R='{"alg":"RS256","typ":"JWT"}'
E='{"alg":"ES256","typ":"JWT"}'
P='{"sub":"u1","projects":["p1"],"channels":["channel:team-*"],"exp":4102444800}'
{
  echo "hs256_valid $(hs256 "$H" "$P" "$(hex $SECRET)")"
  echo "hs256_expired $(hs256 "$H" '{"sub":"u1","exp":1000000000}' "$(hex $SECRET)")"
  echo "hs256_not_yet_valid $(hs256 "$H" '{"sub":"u1","nbf":4102444800}' "$(hex $SECRET)")"
  echo "hs256_wrong_secret $(hs256 "$H" "$P" "$(hex other-secret-also-at-least-32-bytes-long)")"
  good=$(hs256 "$H" "$P" "$(hex $SECRET)")
  forged_payload=$(printf '%s' '{"sub":"admin","projects":["p1","p2"],"exp":4102444800}' | b64u)
  echo "hs256_tampered $(echo "$good" | cut -d. -f1).$forged_payload.$(echo "$good" | cut -d. -f3)"
  echo "hs256_aud_iss $(hs256 "$H" '{"sub":"u1","aud":"evstream","iss":"https://issuer.example","exp":4102444800}' "$(hex $SECRET)")"
  echo "hs256_aud_list $(hs256 "$H" '{"sub":"u1","aud":["other","evstream"],"iss":"https://issuer.example","exp":4102444800}' "$(hex $SECRET)")"
  echo "none_alg $(printf '%s' '{"alg":"none","typ":"JWT"}' | b64u).$(printf '%s' "$P" | b64u)."
  echo "rs256_valid $(rs256 "$R" "$P")"
  rs=$(rs256 "$R" "$P")
  echo "rs256_tampered $(echo "$rs" | cut -d. -f1).$forged_payload.$(echo "$rs" | cut -d. -f3)"
  # The classic forgery: HS256 keyed with the server's RSA *public* key.
  echo "hs256_keyed_with_rsa_public_key $(hs256 "$H" "$P" "$(xxd -p rsa_public.pem | tr -d '\n')")"
  echo "es256_valid $(es256 "$E" "$P")"
  echo "hs512_valid $(printf '%s' '{"alg":"HS512","typ":"JWT"}' | b64u).$(printf '%s' "$P" | b64u).$(printf '%s' "$(printf '%s' '{"alg":"HS512","typ":"JWT"}' | b64u).$(printf '%s' "$P" | b64u)" | openssl dgst -sha512 -mac HMAC -macopt "hexkey:$(hex $SECRET)" -binary | b64u)"
} > tokens.txt
echo "wrote $(wc -l < tokens.txt) tokens"
