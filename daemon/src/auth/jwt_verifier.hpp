// JWT verification with OpenSSL's EVP API directly (auth/jose.hpp), in this order, each step on
// input the previous one proved well formed:
//   1. the compact form: at most kMaxTokenBytes, exactly three non-empty base64url segments
//      (strict alphabet, no padding), no byte outside [A-Za-z0-9_.-];
//   2. the header (at most 1 KiB, a JSON object; `alg` a string, `kid` a string if present,
//      no `crit`) chooses among the configured keys: a key verifies only the algorithm it was
//      loaded for, so `alg: none` or HS256 "signed" with an RSA public key never match one;
//   3. the signature over header.payload (HMAC compared in constant time, RSA PKCS#1 v1.5,
//      ECDSA P-256 from JOSE r||s, Ed25519);
//   4. only then the payload: a JSON object whose registered claims are typed and in range
//      (exp/nbf/iat integers in [0, 253402300799]; sub/iss strings; aud a string or strings),
//      exp required unless allow_no_exp, nbf/exp/iat against the clock with the leeway, iat
//      within max_age_seconds when set, iss/aud when configured.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/jose.hpp"

namespace evstream::auth {

constexpr size_t kMaxTokenBytes = 8192;
constexpr int64_t kMaxNumericDate = 253402300799;  // 9999-12-31T23:59:59Z

struct VerifierConfig {
  std::string hs256_secret;          // empty: HS256 not accepted
  std::string hs256_secret_source = "--jwt-secret";
  std::string public_key_pem;        // empty: none (RS256, ES256 or EdDSA by key type)
  std::string jwks_json;             // empty: none; else a JWK Set (keys chosen by kid)
  std::string audience;              // empty: not checked
  std::string issuer;                // empty: not checked
  int leeway_seconds = 0;
  bool allow_no_exp = false;         // true: tokens without exp are accepted (never expire)
  int64_t max_age_seconds = 0;       // > 0: iat required and at most this old
};

struct VerifiedToken {
  nlohmann::json claims;  // an object
  // When the token stops being valid (Unix seconds): min(exp, iat + max_age); 0 = never.
  int64_t expires_at = 0;
  std::string alg;
  std::string kid;
};

class JwtVerifier {
 public:
  // Throws std::runtime_error when a key cannot be read, is of an unsupported type, or is weak
  // (HS256 secret under 32 bytes, RSA under 2048 bits).
  explicit JwtVerifier(const VerifierConfig& cfg);

  // Replaces the keys (SIGHUP; safe while other threads verify). The other settings stay as
  // constructed. On error the old keys stay and *error says why.
  bool Reload(const VerifierConfig& cfg, std::string* error);

  bool Enabled() const { return !std::atomic_load(&keys_)->empty(); }
  // The verified token, or nullopt with *error set (a short reason, safe to return to clients).
  // Never throws.
  std::optional<VerifiedToken> VerifyToken(std::string_view token, std::string* error,
                                           double now_seconds = 0) const;
  // The claims only (same checks).
  std::optional<nlohmann::json> Verify(std::string_view token, std::string* error, double now_seconds = 0) const;
  std::vector<std::string> Algorithms() const;  // distinct, sorted
  size_t KeyCount() const { return std::atomic_load(&keys_)->size(); }

 private:
  static std::shared_ptr<const std::vector<VerifyKey>> LoadKeys(const VerifierConfig& cfg,
                                                                std::vector<std::string>* skipped);
  std::optional<VerifiedToken> VerifyUnguarded(std::string_view token, std::string* error, double now) const;

  VerifierConfig cfg_;
  std::shared_ptr<const std::vector<VerifyKey>> keys_;
};

}  // namespace evstream::auth
