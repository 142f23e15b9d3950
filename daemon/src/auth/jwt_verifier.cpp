#include "auth/jwt_verifier.hpp"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cmath>
#include <memory>
#include <stdexcept>

#include <jwt/jwt.hpp>

#include "core/log.hpp"

namespace evstream::auth {
namespace {

// Which algorithm a PEM public key is for: RS256 (RSA) or ES256 (EC P-256).
std::string AlgorithmForPublicKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  if (!bio) throw std::runtime_error("cannot allocate a BIO");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) throw std::runtime_error("--jwt-public-key is not a PEM public key (BEGIN PUBLIC KEY)");
  switch (EVP_PKEY_base_id(key.get())) {
    case EVP_PKEY_RSA:
      return "RS256";
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key.get(), "group", group, sizeof group, &len) != 1 ||
          (std::string(group) != "prime256v1" && std::string(group) != "P-256"))
        throw std::runtime_error("--jwt-public-key: only P-256 EC keys (ES256) are supported");
      return "ES256";
    }
    default:
      throw std::runtime_error("--jwt-public-key: only RSA (RS256) and P-256 (ES256) keys are supported");
  }
}

bool NumericClaim(const nlohmann::json& claims, const char* name, double* out, bool* present) {
  auto it = claims.find(name);
  *present = it != claims.end();
  if (!*present) return true;
  if (!it->is_number()) return false;
  *out = it->get<double>();
  return true;
}

}  // namespace

JwtVerifier::JwtVerifier(const VerifierConfig& cfg) : cfg_(cfg) {
  if (!cfg_.hs256_secret.empty()) keys_["HS256"] = cfg_.hs256_secret;
  if (!cfg_.public_key_pem.empty()) keys_[AlgorithmForPublicKey(cfg_.public_key_pem)] = cfg_.public_key_pem;
}

std::vector<std::string> JwtVerifier::Algorithms() const {
  std::vector<std::string> algs;
  for (const auto& [alg, key] : keys_) algs.push_back(alg);
  return algs;
}

std::optional<nlohmann::json> JwtVerifier::Verify(std::string_view token, std::string* error,
                                                  double now_seconds) const {
  if (now_seconds <= 0) now_seconds = core::NowSeconds();
  if (token.empty()) {
    *error = "missing token";
    return std::nullopt;
  }
  auto dot = token.find('.');
  if (dot == std::string_view::npos || token.find('.', dot + 1) == std::string_view::npos) {
    *error = "malformed token";
    return std::nullopt;
  }
  // Read the header only to pick the key; the allow-list, not the token, decides what is valid.
  std::string alg;
  try {
    auto header = nlohmann::json::parse(jwt::base64_uri_decode(token.data(), dot));
    if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string()) {
      *error = "token header has no algorithm";
      return std::nullopt;
    }
    alg = header["alg"].get<std::string>();
  } catch (const std::exception&) {
    *error = "malformed token header";
    return std::nullopt;
  }
  auto key = keys_.find(alg);
  if (key == keys_.end()) {
    *error = "algorithm " + alg + " is not accepted";
    return std::nullopt;
  }
  nlohmann::json claims;
  try {
    std::error_code ec;
    auto obj = jwt::decode(jwt::string_view(token.data(), token.size()), jwt::params::algorithms({alg}), ec,
                           jwt::params::secret(key->second), jwt::params::verify(true),
                           jwt::params::leeway(static_cast<uint32_t>(cfg_.leeway_seconds)));
    if (ec) {
      *error = "invalid token: " + ec.message();
      return std::nullopt;
    }
    claims = obj.payload().create_json_obj();
  } catch (const std::exception& e) {
    *error = std::string("invalid token: ") + e.what();
    return std::nullopt;
  }
  if (!claims.is_object()) {
    *error = "token payload is not an object";
    return std::nullopt;
  }
  double exp = 0, nbf = 0;
  bool has_exp, has_nbf;
  if (!NumericClaim(claims, "exp", &exp, &has_exp) || !NumericClaim(claims, "nbf", &nbf, &has_nbf)) {
    *error = "exp/nbf must be numbers";
    return std::nullopt;
  }
  if (has_exp && now_seconds >= exp + cfg_.leeway_seconds) {
    *error = "token expired";
    return std::nullopt;
  }
  if (has_nbf && now_seconds + cfg_.leeway_seconds < nbf) {
    *error = "token not valid yet";
    return std::nullopt;
  }
  if (!cfg_.issuer.empty()) {
    auto it = claims.find("iss");
    if (it == claims.end() || !it->is_string() || it->get<std::string>() != cfg_.issuer) {
      *error = "wrong issuer";
      return std::nullopt;
    }
  }
  if (!cfg_.audience.empty()) {
    bool ok = false;
    if (auto it = claims.find("aud"); it != claims.end()) {
      if (it->is_string()) ok = it->get<std::string>() == cfg_.audience;
      if (it->is_array())
        for (const auto& a : *it) ok = ok || (a.is_string() && a.get<std::string>() == cfg_.audience);
    }
    if (!ok) {
      *error = "wrong audience";
      return std::nullopt;
    }
  }
  return claims;
}

}  // namespace evstream::auth
