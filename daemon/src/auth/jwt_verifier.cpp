#include "auth/jwt_verifier.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "core/log.hpp"

namespace evstream::auth {
namespace {

constexpr size_t kMaxHeaderBytes = 1024;
constexpr size_t kMaxKidBytes = 256;

std::optional<VerifiedToken> Fail(std::string* error, std::string why) {
  *error = std::move(why);
  return std::nullopt;
}

// A registered NumericDate claim: absent, or an integer in [0, kMaxNumericDate].
// Floats (1e20, -1.5, 1.0), strings, booleans and out-of-range integers are refused.
enum class DateClaim { Absent, Ok, Bad };
DateClaim ReadDate(const nlohmann::json& claims, const char* name, int64_t* out) {
  auto it = claims.find(name);
  if (it == claims.end()) return DateClaim::Absent;
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(kMaxNumericDate)) return DateClaim::Bad;
    *out = static_cast<int64_t>(v);
    return DateClaim::Ok;
  }
  if (it->is_number_integer()) {
    int64_t v = it->get<int64_t>();
    if (v < 0 || v > kMaxNumericDate) return DateClaim::Bad;
    *out = v;
    return DateClaim::Ok;
  }
  return DateClaim::Bad;
}

bool OptionalString(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  return it == claims.end() || it->is_string();
}

}  // namespace

std::shared_ptr<const std::vector<VerifyKey>> JwtVerifier::LoadKeys(const VerifierConfig& cfg,
                                                                    std::vector<std::string>* skipped) {
  auto keys = std::make_shared<std::vector<VerifyKey>>();
  if (!cfg.hs256_secret.empty()) keys->push_back(KeyFromSecret(cfg.hs256_secret, cfg.hs256_secret_source));
  if (!cfg.public_key_pem.empty()) keys->push_back(KeyFromPem(cfg.public_key_pem, "--jwt-public-key"));
  if (!cfg.jwks_json.empty())
    for (auto& k : KeysFromJwks(cfg.jwks_json, "--jwt-jwks", skipped)) keys->push_back(std::move(k));
  return keys;
}

JwtVerifier::JwtVerifier(const VerifierConfig& cfg) : cfg_(cfg) {
  std::vector<std::string> skipped;
  keys_ = LoadKeys(cfg, &skipped);
  for (const auto& s : skipped) core::LogWarn("JWKS key skipped", {{"key", s}});
}

bool JwtVerifier::Reload(const VerifierConfig& cfg, std::string* error) {
  std::vector<std::string> skipped;
  try {
    auto keys = LoadKeys(cfg, &skipped);
    if (keys->empty()) {
      *error = "no key left: every token would be refused";
      return false;
    }
    // Every loop verifies with keys_ (--threads): swapped atomically; the other settings
    // (leeway, audience, issuer, ...) are not reloadable and are never written after start.
    std::atomic_store(&keys_, std::shared_ptr<const std::vector<VerifyKey>>(std::move(keys)));
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  for (const auto& s : skipped) core::LogWarn("JWKS key skipped", {{"key", s}});
  return true;
}

std::vector<std::string> JwtVerifier::Algorithms() const {
  std::set<std::string> algs;
  for (const auto& k : *std::atomic_load(&keys_)) algs.insert(k.alg);
  return {algs.begin(), algs.end()};
}

std::optional<nlohmann::json> JwtVerifier::Verify(std::string_view token, std::string* error,
                                                  double now_seconds) const {
  auto v = VerifyToken(token, error, now_seconds);
  if (!v) return std::nullopt;
  return std::move(v->claims);
}

std::optional<VerifiedToken> JwtVerifier::VerifyToken(std::string_view token, std::string* error,
                                                      double now_seconds) const {
  if (now_seconds <= 0) now_seconds = core::NowSeconds();
  try {
    return VerifyUnguarded(token, error, now_seconds);
  } catch (const std::exception& e) {  // allocation failure; nothing else throws by design
    return Fail(error, "invalid token");
  }
}

std::optional<VerifiedToken> JwtVerifier::VerifyUnguarded(std::string_view token, std::string* error,
                                                          double now) const {
  // 1. Compact form, before anything decodes it.
  if (token.empty()) return Fail(error, "missing token");
  if (token.size() > kMaxTokenBytes)
    return Fail(error, "malformed token: longer than " + std::to_string(kMaxTokenBytes) + " bytes");
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return Fail(error, "malformed token: expected three base64url segments separated by '.'");
  std::string_view head_b64 = token.substr(0, d1), body_b64 = token.substr(d1 + 1, d2 - d1 - 1),
                   sig_b64 = token.substr(d2 + 1);
  if (head_b64.empty() || body_b64.empty()) return Fail(error, "malformed token: empty segment");
  if (sig_b64.empty()) return Fail(error, "unsigned token (alg none) is not accepted");
  std::string header_bytes, sig;
  if (!DecodeBase64Url(head_b64, &header_bytes) || !DecodeBase64Url(sig_b64, &sig))
    return Fail(error, "malformed token: not base64url");
  // The payload is decoded only to check its alphabet here; it is parsed after the signature.
  std::string payload_bytes;
  if (!DecodeBase64Url(body_b64, &payload_bytes)) return Fail(error, "malformed token: not base64url");
  if (header_bytes.size() > kMaxHeaderBytes) return Fail(error, "malformed token: header too large");

  // 2. Header: picks the key among those configured; the key decides what the alg may be.
  nlohmann::json header = nlohmann::json::parse(header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return Fail(error, "malformed token header");
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return Fail(error, "token header has no algorithm");
  std::string alg = alg_it->get<std::string>();
  std::string kid;
  if (auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string() || it->get<std::string>().size() > kMaxKidBytes) return Fail(error, "malformed token header: kid");
    kid = it->get<std::string>();
  }
  if (header.contains("crit")) return Fail(error, "token header has unsupported crit extensions");
  if (alg != "HS256" && alg != "RS256" && alg != "ES256" && alg != "EdDSA")
    return Fail(error, "algorithm is not accepted (HS256, RS256, ES256 or EdDSA only, as configured)");
  std::shared_ptr<const std::vector<VerifyKey>> keys = std::atomic_load(&keys_);
  std::vector<const VerifyKey*> candidates;
  bool kid_known = false;
  for (const auto& k : *keys) {
    if (k.kid != kid) continue;
    kid_known = true;
    if (k.alg == alg) candidates.push_back(&k);
  }
  if (candidates.empty()) {
    if (!kid.empty() && !kid_known) return Fail(error, "unknown key id (kid)");
    return Fail(error, "algorithm " + alg + " is not accepted" + (kid.empty() ? "" : " for this kid"));
  }

  // 3. Signature over the exact bytes received.
  std::string_view signing_input = token.substr(0, d2);
  const VerifyKey* used = nullptr;
  for (const VerifyKey* k : candidates)
    if (VerifySignature(*k, signing_input, sig)) {
      used = k;
      break;
    }
  if (!used) return Fail(error, "invalid token: signature does not verify");

  // 4. Claims, typed.
  VerifiedToken out;
  out.alg = alg;
  out.kid = kid;
  out.claims = nlohmann::json::parse(payload_bytes, nullptr, false);
  if (out.claims.is_discarded() || !out.claims.is_object()) return Fail(error, "token payload is not a JSON object");
  const nlohmann::json& c = out.claims;
  int64_t exp = 0, nbf = 0, iat = 0;
  DateClaim has_exp = ReadDate(c, "exp", &exp), has_nbf = ReadDate(c, "nbf", &nbf), has_iat = ReadDate(c, "iat", &iat);
  if (has_exp == DateClaim::Bad || has_nbf == DateClaim::Bad || has_iat == DateClaim::Bad)
    return Fail(error, "exp, nbf and iat must be integers (seconds since 1970) up to " + std::to_string(kMaxNumericDate));
  if (!OptionalString(c, "sub") || !OptionalString(c, "iss")) return Fail(error, "sub and iss must be strings");
  if (auto it = c.find("aud"); it != c.end()) {
    bool ok = it->is_string();
    if (it->is_array()) ok = std::all_of(it->begin(), it->end(), [](const nlohmann::json& a) { return a.is_string(); });
    if (!ok) return Fail(error, "aud must be a string or an array of strings");
  }
  const double leeway = cfg_.leeway_seconds;
  if (has_exp == DateClaim::Absent && !cfg_.allow_no_exp) return Fail(error, "token has no exp (expiry) claim");
  if (has_exp == DateClaim::Ok && now >= static_cast<double>(exp) + leeway) return Fail(error, "token expired");
  if (has_nbf == DateClaim::Ok && now + leeway < static_cast<double>(nbf)) return Fail(error, "token not valid yet");
  if (has_iat == DateClaim::Ok && now + leeway < static_cast<double>(iat)) return Fail(error, "token issued in the future");
  int64_t expires_at = has_exp == DateClaim::Ok ? exp + cfg_.leeway_seconds : 0;
  if (cfg_.max_age_seconds > 0) {
    if (has_iat != DateClaim::Ok) return Fail(error, "token has no iat (issued at) claim");
    int64_t until = iat + cfg_.max_age_seconds + cfg_.leeway_seconds;
    if (now >= static_cast<double>(until)) return Fail(error, "token too old (older than --jwt-max-age)");
    if (expires_at == 0 || until < expires_at) expires_at = until;
  }
  out.expires_at = expires_at;
  if (!cfg_.issuer.empty()) {
    auto it = c.find("iss");
    if (it == c.end() || it->get<std::string>() != cfg_.issuer) return Fail(error, "wrong issuer");
  }
  if (!cfg_.audience.empty()) {
    bool ok = false;
    if (auto it = c.find("aud"); it != c.end()) {
      if (it->is_string()) ok = it->get<std::string>() == cfg_.audience;
      if (it->is_array())
        for (const auto& a : *it) ok = ok || a.get<std::string>() == cfg_.audience;
    }
    if (!ok) return Fail(error, "wrong audience");
  }
  return out;
}

}  // namespace evstream::auth
