// JOSE building blocks verified directly with OpenSSL's EVP API (no JWT library):
//   - strict base64url (RFC 4648 §5, no padding, canonical trailing bits),
//   - verification keys, each bound to exactly one algorithm when it is loaded (HS256 secret,
//     RS256 RSA >= 2048 bits, ES256 P-256, EdDSA Ed25519) from a secret, a PEM file or a JWKS,
//   - signature verification for one key over a signing input.
// The token's header never chooses the key type: a key answers only for its own algorithm.
#pragma once
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace evstream::auth {

// Strict base64url: alphabet [A-Za-z0-9_-] only, no '=', length % 4 != 1, unused low bits zero.
// Returns false (and leaves *out unspecified) on anything else.
bool DecodeBase64Url(std::string_view in, std::string* out);
std::string EncodeBase64Url(std::string_view in);

constexpr size_t kMinHs256SecretBytes = 32;
constexpr int kMinRsaBits = 2048;

struct VerifyKey {
  std::string alg;     // "HS256", "RS256", "ES256" or "EdDSA": the only algorithm this key verifies
  std::string kid;     // empty: selected only by tokens without a kid
  std::string source;  // for logs: "--jwt-secret", "--jwt-public-key", "--jwt-jwks[2]"
  std::string secret;  // HS256
  std::shared_ptr<EVP_PKEY> pkey;  // the others
};

// Each throws std::runtime_error with a message that names the flag and the fix.
VerifyKey KeyFromSecret(const std::string& secret, const std::string& source);
VerifyKey KeyFromPem(const std::string& pem, const std::string& source);
// A JWK Set ({"keys": [...]}): RSA (RS256), EC P-256 (ES256), OKP Ed25519 (EdDSA) signature keys.
// Keys for encryption ("use": "enc") or other algorithms are skipped (named in *skipped); a
// malformed or weak key, a duplicate kid, or a set with no usable key is an error.
std::vector<VerifyKey> KeysFromJwks(const std::string& json_text, const std::string& source,
                                    std::vector<std::string>* skipped);

// Verifies `signature` (decoded bytes, JOSE form) over `signing_input` with `key`.
// Never throws; false on any failure.
bool VerifySignature(const VerifyKey& key, std::string_view signing_input, const std::string& signature);

}  // namespace evstream::auth
