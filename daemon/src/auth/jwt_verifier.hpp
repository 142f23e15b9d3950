// Token verification through cpp-jwt with an explicit algorithm allow-list: the key decides the
// algorithm (shared secret -> HS256, RSA public key -> RS256, P-256 public key -> ES256), never
// the token. Claims exp/nbf/aud/iss are checked here.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::auth {

struct VerifierConfig {
  std::string hs256_secret;    // empty: HS256 not accepted
  std::string public_key_pem;  // empty: no RS256/ES256
  std::string audience;        // empty: not checked
  std::string issuer;          // empty: not checked
  int leeway_seconds = 0;
};

class JwtVerifier {
 public:
  // Throws std::runtime_error if the public key cannot be read or is of an unsupported type.
  explicit JwtVerifier(const VerifierConfig& cfg);

  bool Enabled() const { return !keys_.empty(); }
  // The verified claims, or nullopt with *error set (a short reason, safe to return to clients).
  std::optional<nlohmann::json> Verify(std::string_view token, std::string* error,
                                       double now_seconds = 0) const;
  std::vector<std::string> Algorithms() const;

 private:
  VerifierConfig cfg_;
  std::map<std::string, std::string> keys_;  // algorithm -> key
};

}  // namespace evstream::auth
