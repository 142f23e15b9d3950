#include "auth/jose.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace evstream::auth {
namespace {

int Base64UrlValue(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

using PkeyPtr = std::shared_ptr<EVP_PKEY>;
PkeyPtr Wrap(EVP_PKEY* k) { return PkeyPtr(k, &EVP_PKEY_free); }

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// The algorithm a public key verifies, or throws. RSA keys under kMinRsaBits are refused.
std::string AlgorithmFor(EVP_PKEY* key, const std::string& source) {
  switch (EVP_PKEY_base_id(key)) {
    case EVP_PKEY_RSA: {
      int bits = EVP_PKEY_get_bits(key);
      if (bits < kMinRsaBits)
        throw std::runtime_error(source + ": RSA key has " + std::to_string(bits) + " bits; at least " +
                                 std::to_string(kMinRsaBits) + " are required");
      return "RS256";
    }
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1 ||
          (std::string(group) != "prime256v1" && std::string(group) != "P-256"))
        throw std::runtime_error(source + ": only P-256 EC keys (ES256) are supported");
      return "ES256";
    }
    case EVP_PKEY_ED25519:
      return "EdDSA";
    default:
      throw std::runtime_error(source + ": only RSA (RS256), P-256 (ES256) and Ed25519 (EdDSA) keys are supported");
  }
}

std::string JwkString(const nlohmann::json& jwk, const char* name, const std::string& where, bool required = true) {
  auto it = jwk.find(name);
  if (it == jwk.end()) {
    if (required) throw std::runtime_error(where + ": missing \"" + name + "\"");
    return "";
  }
  if (!it->is_string()) throw std::runtime_error(where + ": \"" + name + "\" must be a string");
  return it->get<std::string>();
}

std::string JwkBytes(const nlohmann::json& jwk, const char* name, const std::string& where) {
  std::string out;
  if (!DecodeBase64Url(JwkString(jwk, name, where), &out) || out.empty())
    throw std::runtime_error(where + ": \"" + name + "\" is not base64url");
  return out;
}

PkeyPtr FromData(const char* type, OSSL_PARAM_BLD* bld, const std::string& where) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!ok) {
    EVP_PKEY_free(key);
    throw std::runtime_error(where + ": not a valid " + type + " public key");
  }
  PkeyPtr k = Wrap(key);
  // An EC point must be on the curve (an invalid-curve point would leak nothing here, but a
  // key that cannot verify anything is a configuration error worth reporting).
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
  bool valid = check && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!valid) throw std::runtime_error(where + ": not a valid " + type + " public key");
  return k;
}

PkeyPtr RsaFromJwk(const nlohmann::json& jwk, const std::string& where) {
  std::string n = JwkBytes(jwk, "n", where), e = JwkBytes(jwk, "e", where);
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld || !bn_n || !bn_e || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    OSSL_PARAM_BLD_free(bld);
    throw std::runtime_error(where + ": cannot build an RSA key");
  }
  try {
    PkeyPtr k = FromData("RSA", bld, where);
    OSSL_PARAM_BLD_free(bld);
    return k;
  } catch (...) {
    OSSL_PARAM_BLD_free(bld);
    throw;
  }
}

PkeyPtr EcFromJwk(const nlohmann::json& jwk, const std::string& where) {
  if (JwkString(jwk, "crv", where) != "P-256") throw std::runtime_error(where + ": only crv P-256 is supported for EC");
  std::string x = JwkBytes(jwk, "x", where), y = JwkBytes(jwk, "y", where);
  if (x.size() != 32 || y.size() != 32) throw std::runtime_error(where + ": P-256 x and y must be 32 bytes each");
  std::string point = "\x04" + x + y;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    OSSL_PARAM_BLD_free(bld);
    throw std::runtime_error(where + ": cannot build an EC key");
  }
  try {
    PkeyPtr k = FromData("EC", bld, where);
    OSSL_PARAM_BLD_free(bld);
    return k;
  } catch (...) {
    OSSL_PARAM_BLD_free(bld);
    throw;
  }
}

PkeyPtr OkpFromJwk(const nlohmann::json& jwk, const std::string& where) {
  if (JwkString(jwk, "crv", where) != "Ed25519") throw std::runtime_error(where + ": only crv Ed25519 is supported for OKP");
  std::string x = JwkBytes(jwk, "x", where);
  if (x.size() != 32) throw std::runtime_error(where + ": Ed25519 x must be 32 bytes");
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                            reinterpret_cast<const unsigned char*>(x.data()), x.size());
  if (!k) throw std::runtime_error(where + ": not a valid Ed25519 public key");
  return Wrap(k);
}

bool DigestVerify(EVP_PKEY* key, const EVP_MD* md, std::string_view input, const unsigned char* sig, size_t sig_len) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// JOSE ES256 signatures are r||s (32 bytes each); OpenSSL wants DER.
bool VerifyEs256(EVP_PKEY* key, std::string_view input, const std::string& sig) {
  if (sig.size() != 64) return false;
  ECDSA_SIG* es = ECDSA_SIG_new();
  if (!es) return false;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  if (der_len <= 0) return false;
  bool ok = DigestVerify(key, EVP_sha256(), input, der, static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

}  // namespace

bool DecodeBase64Url(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    int v = Base64UrlValue(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits (2 or 4) must be zero: one canonical encoding per byte string.
  return (acc & ((1u << bits) - 1)) == 0;
}

std::string EncodeBase64Url(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

VerifyKey KeyFromSecret(const std::string& secret, const std::string& source) {
  if (secret.size() < kMinHs256SecretBytes)
    throw std::runtime_error(source + " is " + std::to_string(secret.size()) + " bytes; an HS256 secret needs at least " +
                             std::to_string(kMinHs256SecretBytes) +
                             " bytes (make one with: openssl rand -base64 32)");
  VerifyKey k;
  k.alg = "HS256";
  k.source = source;
  k.secret = secret;
  return k;
}

VerifyKey KeyFromPem(const std::string& pem, const std::string& source) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) throw std::runtime_error("cannot allocate a BIO");
  EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!raw) throw std::runtime_error(source + " is not a PEM public key (BEGIN PUBLIC KEY)");
  VerifyKey k;
  k.pkey = Wrap(raw);
  k.alg = AlgorithmFor(raw, source);
  k.source = source;
  return k;
}

std::vector<VerifyKey> KeysFromJwks(const std::string& json_text, const std::string& source,
                                    std::vector<std::string>* skipped) {
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) throw std::runtime_error(source + " is not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) throw std::runtime_error(source + " has no \"keys\" array");
  std::vector<VerifyKey> out;
  std::set<std::string> kids;
  for (size_t i = 0; i < keys->size(); i++) {
    const nlohmann::json& jwk = (*keys)[i];
    std::string where = source + " key " + std::to_string(i);
    if (!jwk.is_object()) throw std::runtime_error(where + " is not an object");
    std::string kty = JwkString(jwk, "kty", where);
    std::string use = JwkString(jwk, "use", where, false);
    std::string alg = JwkString(jwk, "alg", where, false);
    std::string kid = JwkString(jwk, "kid", where, false);
    if (!kid.empty()) where += " (kid " + kid + ")";
    if (!use.empty() && use != "sig") {
      skipped->push_back(where + ": use " + use);
      continue;
    }
    VerifyKey k;
    if (kty == "RSA") {
      k.pkey = RsaFromJwk(jwk, where);
    } else if (kty == "EC") {
      k.pkey = EcFromJwk(jwk, where);
    } else if (kty == "OKP") {
      k.pkey = OkpFromJwk(jwk, where);
    } else {
      skipped->push_back(where + ": kty " + kty);
      continue;
    }
    k.alg = AlgorithmFor(k.pkey.get(), where);
    if (!alg.empty() && alg != k.alg) {
      if (kty == "RSA" && (alg == "RS384" || alg == "RS512" || alg.rfind("PS", 0) == 0)) {
        skipped->push_back(where + ": alg " + alg);
        continue;
      }
      throw std::runtime_error(where + ": alg " + alg + " does not match its " + kty + " key (" + k.alg + ")");
    }
    if (!kid.empty() && !kids.insert(kid).second) throw std::runtime_error(where + ": duplicate kid");
    k.kid = kid;
    k.source = where;
    out.push_back(std::move(k));
  }
  if (out.empty()) throw std::runtime_error(source + " holds no usable signature key (RS256, ES256 or EdDSA)");
  return out;
}

bool VerifySignature(const VerifyKey& key, std::string_view input, const std::string& sig) {
  if (key.alg == "HS256") {
    if (sig.size() != 32 || key.secret.empty()) return false;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len) ||
        mac_len != 32)
      return false;
    return CRYPTO_memcmp(mac, sig.data(), 32) == 0;
  }
  if (!key.pkey) return false;
  if (key.alg == "RS256") {
    if (sig.empty() || sig.size() > 1024) return false;
    return DigestVerify(key.pkey.get(), EVP_sha256(), input, reinterpret_cast<const unsigned char*>(sig.data()),
                        sig.size());
  }
  if (key.alg == "ES256") return VerifyEs256(key.pkey.get(), input, sig);
  if (key.alg == "EdDSA") {
    if (sig.size() != 64) return false;
    return DigestVerify(key.pkey.get(), nullptr, input, reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  }
  return false;
}

}  // namespace evstream::auth
