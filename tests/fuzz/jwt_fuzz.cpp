// JWT verification (daemon/src/auth/jwt_verifier.cpp, auth/jose.cpp): the strict compact-form,
// base64url, header and claim checks on hostile tokens. Input: one mode byte, then
//   'r' + bytes: the bytes are the token, verified as they are (almost always refused: the fuzzer
//                explores the checks before the signature);
//   's' + "<header JSON>\n<payload JSON>": the harness signs header.payload with the HS256 key
//                itself, so that the checks after the signature (typed, ranged claims) run on
//                whatever the fuzzer writes.
// Properties: nothing crashes or reads out of bounds (ASan/UBSan); a refusal carries a reason; an
// accepted token has an object for claims, an algorithm the key was loaded for, and an expiry
// that is never later than its exp (plus the leeway).
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>

#include "auth/jose.hpp"
#include "auth/jwt_verifier.hpp"
#include "fuzz_util.hpp"

namespace auth = evstream::auth;

namespace {
const std::string kSecret = "fuzz-secret-that-is-at-least-32-bytes-long";
constexpr double kNow = 1800000000;  // a fixed clock: results do not depend on the day
constexpr int kLeeway = 5;

const auth::JwtVerifier& Verifier() {
  static const auth::JwtVerifier* v = [] {
    auth::VerifierConfig cfg;
    cfg.hs256_secret = kSecret;
    cfg.max_age_seconds = 3600;
    cfg.leeway_seconds = kLeeway;
    return new auth::JwtVerifier(cfg);
  }();
  return *v;
}

std::string SignHs256(const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return auth::EncodeBase64Url(std::string(reinterpret_cast<const char*>(mac), len));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in = fuzz::View(data + 1, size - 1);
  std::string token;
  if (data[0] == 's') {
    auto parts = fuzz::Split(in, '\n', 2);
    if (parts.size() != 2) return 0;
    std::string signing = auth::EncodeBase64Url(parts[0]) + "." + auth::EncodeBase64Url(parts[1]);
    token = signing + "." + SignHs256(signing);
  } else {
    token.assign(in);
  }
  std::string error;
  auto v = Verifier().VerifyToken(token, &error, kNow);
  if (!v) {
    FUZZ_CHECK(!error.empty(), "a refused token without a reason");
    return 0;
  }
  FUZZ_CHECK(v->claims.is_object(), "accepted claims that are not an object");
  FUZZ_CHECK(v->alg == "HS256", "accepted an algorithm the key was not loaded for");
  auto exp = v->claims.find("exp");
  FUZZ_CHECK(exp != v->claims.end() && exp->is_number_integer(), "accepted a token without an integer exp");
  // The token stops being accepted (and its stream ends) at exp + leeway at the latest.
  FUZZ_CHECK(v->expires_at > 0 && v->expires_at <= exp->get<int64_t>() + kLeeway, "expiry later than exp + leeway");
  return 0;
}
