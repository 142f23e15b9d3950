// The verifier against hostile tokens: every malformed class is refused before any claim is
// read, keys answer only for their own algorithm, kid selects among JWKS keys, weak keys refuse
// to load. Keys are generated and tokens signed here with OpenSSL's EVP API (signing code the
// verifier does not share), so each case is built exactly as an attacker would.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "auth/jose.hpp"
#include "auth/jwt_verifier.hpp"

namespace {
using evstream::auth::DecodeBase64Url;
using evstream::auth::EncodeBase64Url;
using evstream::auth::JwtVerifier;
using evstream::auth::VerifierConfig;
using Json = nlohmann::json;

const std::string kSecret = "0123456789abcdef0123456789abcdef-unit";  // >= 32 bytes
constexpr double kNow = 1800000000;                                    // 2027-01-15

std::shared_ptr<EVP_PKEY> Gen(const char* type, int bits_or_zero = 0) {
  EVP_PKEY* k = nullptr;
  if (std::string(type) == "RSA")
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits_or_zero));
  else if (std::string(type) == "EC")
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  else
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  return std::shared_ptr<EVP_PKEY>(k, &EVP_PKEY_free);
}

std::string PublicPem(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string Sign(const std::string& alg, EVP_PKEY* k, const std::string& input, const std::string& secret = kSecret) {
  if (alg == "HS256") {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, nullptr, alg == "EdDSA" ? nullptr : EVP_sha256(), nullptr, k);
  size_t len = 0;
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (alg != "ES256") return sig;
  // DER -> JOSE r||s
  const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  unsigned char rs[64];
  BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
  ECDSA_SIG_free(es);
  return std::string(reinterpret_cast<char*>(rs), 64);
}

// A token from raw header and payload text (so malformed JSON/claims can be signed).
std::string Raw(const std::string& header, const std::string& payload, EVP_PKEY* k = nullptr,
                const std::string& secret = kSecret) {
  Json h = Json::parse(header, nullptr, false);
  std::string alg = h.is_object() && h.contains("alg") && h["alg"].is_string() ? h["alg"].get<std::string>() : "HS256";
  std::string input = EncodeBase64Url(header) + "." + EncodeBase64Url(payload);
  return input + "." + EncodeBase64Url(Sign(alg, k, input, secret));
}

std::string Make(const Json& claims, const std::string& alg = "HS256", EVP_PKEY* k = nullptr,
                 const std::string& kid = "") {
  Json h = {{"alg", alg}, {"typ", "JWT"}};
  if (!kid.empty()) h["kid"] = kid;
  return Raw(h.dump(), claims.dump(), k);
}

Json Good() { return {{"sub", "u1"}, {"projects", {"p1"}}, {"exp", static_cast<int64_t>(kNow) + 600}}; }

VerifierConfig Hs() {
  VerifierConfig c;
  c.hs256_secret = kSecret;
  return c;
}

std::string Why(const JwtVerifier& v, const std::string& token) {
  std::string error;
  auto r = v.VerifyToken(token, &error, kNow);
  return r ? "" : error;
}
bool Ok(const JwtVerifier& v, const std::string& token) { return Why(v, token).empty(); }

std::string Jwk(EVP_PKEY* k, const std::string& kid) {
  Json j;
  if (EVP_PKEY_base_id(k) == EVP_PKEY_RSA) {
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
    std::string nb(BN_num_bytes(n), '\0'), eb(BN_num_bytes(e), '\0');
    BN_bn2bin(n, reinterpret_cast<unsigned char*>(nb.data()));
    BN_bn2bin(e, reinterpret_cast<unsigned char*>(eb.data()));
    BN_free(n);
    BN_free(e);
    j = {{"kty", "RSA"}, {"n", EncodeBase64Url(nb)}, {"e", EncodeBase64Url(eb)}};
  } else if (EVP_PKEY_base_id(k) == EVP_PKEY_EC) {
    unsigned char pt[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len);
    j = {{"kty", "EC"}, {"crv", "P-256"},
         {"x", EncodeBase64Url(std::string(reinterpret_cast<char*>(pt) + 1, 32))},
         {"y", EncodeBase64Url(std::string(reinterpret_cast<char*>(pt) + 33, 32))}};
  } else {
    unsigned char raw[32];
    size_t len = sizeof raw;
    EVP_PKEY_get_raw_public_key(k, raw, &len);
    j = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", EncodeBase64Url(std::string(reinterpret_cast<char*>(raw), len))}};
  }
  if (!kid.empty()) j["kid"] = kid;
  return j.dump();
}
}  // namespace

TEST(JwtStrict, base64url_is_strict) {
  std::string out;
  EXPECT_TRUE(DecodeBase64Url("aGk", &out));
  EXPECT_EQ(out, "hi");
  EXPECT_TRUE(DecodeBase64Url("-_8", &out));
  EXPECT_FALSE(DecodeBase64Url("aGk=", &out));   // padding
  EXPECT_FALSE(DecodeBase64Url("aGl", &out));    // non-canonical trailing bits
  EXPECT_FALSE(DecodeBase64Url("a", &out));      // length % 4 == 1
  EXPECT_FALSE(DecodeBase64Url("a+b/", &out));   // standard alphabet
  EXPECT_FALSE(DecodeBase64Url("\xff\xfe", &out));
  for (int c = 0; c < 256; c++) {
    std::string s = "AA" + std::string(1, static_cast<char>(c)) + "A";
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    EXPECT_EQ(DecodeBase64Url(s, &out), alpha) << c;
  }
}

TEST(JwtStrict, a_good_hs256_token_passes_and_reports_its_expiry) {
  JwtVerifier v(Hs());
  std::string error;
  auto r = v.VerifyToken(Make(Good()), &error, kNow);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->claims["sub"], "u1");
  EXPECT_EQ(r->expires_at, static_cast<int64_t>(kNow) + 600);
}

TEST(JwtStrict, bytes_at_or_above_0x80_are_refused_in_every_segment) {
  JwtVerifier v(Hs());
  std::string t = Make(Good());
  for (size_t pos : {size_t{0}, t.find('.') + 1, t.rfind('.') + 1, t.size() - 1})
    for (unsigned char b : {0x80, 0xC3, 0xFF}) {
      std::string bad = t;
      bad[pos] = static_cast<char>(b);
      EXPECT_NE(Why(v, bad).find("malformed"), std::string::npos) << pos << " " << int(b);
    }
  EXPECT_FALSE(Ok(v, std::string(100, '\xff')));
  EXPECT_FALSE(Ok(v, "\xff.\xff.\xff"));
}

TEST(JwtStrict, non_base64url_ascii_is_refused) {
  JwtVerifier v(Hs());
  std::string t = Make(Good());
  for (char c : std::string("+/=!*~ \t\r\n\"\\{}%$\x01\x7f")) {
    std::string bad = t;
    bad[3] = c;
    EXPECT_NE(Why(v, bad).find("malformed"), std::string::npos) << int(c);
  }
}

TEST(JwtStrict, wrong_segment_counts_and_empty_segments) {
  JwtVerifier v(Hs());
  std::string t = Make(Good());
  std::string head = t.substr(0, t.find('.'));
  for (const std::string& bad : {std::string("abc"), head, head + ".", t + ".", t + ".x", ".." + t, std::string(".."),
                                 std::string("..."), "." + t.substr(t.find('.') + 1), head + "..sig"})
    EXPECT_FALSE(Ok(v, bad)) << bad;
  EXPECT_EQ(Why(v, ""), "missing token");
}

TEST(JwtStrict, huge_tokens_are_refused_before_decoding) {
  JwtVerifier v(Hs());
  Json big = Good();
  big["pad"] = std::string(9000, 'x');
  EXPECT_NE(Why(v, Make(big)).find("longer than"), std::string::npos);
  EXPECT_NE(Why(v, std::string(1 << 20, 'A')).find("longer than"), std::string::npos);
  Json fits = Good();
  fits["pad"] = std::string(5000, 'x');
  EXPECT_TRUE(Ok(v, Make(fits)));
  // A header over 1 KiB is refused even when signed.
  Json h = {{"alg", "HS256"}, {"x", std::string(1200, 'y')}};
  EXPECT_NE(Why(v, Raw(h.dump(), Good().dump())).find("header too large"), std::string::npos);
}

TEST(JwtStrict, alg_none_and_unknown_algorithms) {
  JwtVerifier v(Hs());
  std::string input = EncodeBase64Url(R"({"alg":"none"})") + "." + EncodeBase64Url(Good().dump());
  EXPECT_NE(Why(v, input + ".").find("unsigned"), std::string::npos);
  EXPECT_NE(Why(v, input + ".c2ln").find("not accepted"), std::string::npos);
  for (const char* alg : {"None", "NONE", "HS512", "HS384", "RS512", "PS256", "ES384", "hs256", ""}) {
    std::string tok = EncodeBase64Url(Json({{"alg", alg}}).dump()) + "." + EncodeBase64Url(Good().dump()) + ".c2ln";
    EXPECT_NE(Why(v, tok).find("not accepted"), std::string::npos) << alg;
  }
  EXPECT_FALSE(Ok(v, Raw(R"({"typ":"JWT"})", Good().dump())));             // no alg
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":256})", Good().dump())));               // alg not a string
  EXPECT_FALSE(Ok(v, Raw(R"(["HS256"])", Good().dump())));                 // header not an object
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256")", Good().dump())));            // header not JSON
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256","crit":["b64"]})", Good().dump())));
}

TEST(JwtStrict, hs256_keyed_with_the_rsa_public_key_is_refused) {
  auto rsa = Gen("RSA", 2048);
  std::string pem = PublicPem(rsa.get());
  VerifierConfig c;
  c.public_key_pem = pem;
  JwtVerifier only_rsa(c);
  std::string forged = Raw(R"({"alg":"HS256"})", Good().dump(), nullptr, pem);
  EXPECT_NE(Why(only_rsa, forged).find("not accepted"), std::string::npos);
  c.hs256_secret = kSecret;
  JwtVerifier both(c);
  EXPECT_FALSE(Ok(both, forged));
  EXPECT_TRUE(Ok(both, Make(Good(), "RS256", rsa.get())));
  EXPECT_TRUE(Ok(both, Make(Good())));
  // An RS256 header over an HMAC signature, and the reverse, fail too.
  std::string input = EncodeBase64Url(R"({"alg":"RS256"})") + "." + EncodeBase64Url(Good().dump());
  EXPECT_FALSE(Ok(both, input + "." + EncodeBase64Url(Sign("HS256", nullptr, input))));
}

TEST(JwtStrict, numeric_dates_must_be_integers_in_range) {
  JwtVerifier v(Hs());
  const std::string exp_ok = std::to_string(static_cast<int64_t>(kNow) + 600);
  for (const char* claim : {"exp", "nbf", "iat"}) {
    for (const std::string& value : {std::string("1e20"), std::string("-1.5"), std::string("1.0"), std::string("\"1800000600\""),
                                     std::string("true"), std::string("null"), std::string("[1]"), std::string("-1"),
                                     std::string("253402300800"), std::string("18446744073709551615"),
                                     std::string("184467440737095516150"), std::string("1e400")}) {
      std::string payload = std::string(R"({"sub":"u1")") + (std::string(claim) == "exp" ? "" : ",\"exp\":" + exp_ok) +
                            ",\"" + claim + "\":" + value + "}";
      std::string why = Why(v, Raw(R"({"alg":"HS256"})", payload));
      EXPECT_FALSE(why.empty()) << claim << "=" << value;
    }
  }
  EXPECT_NE(Why(v, Raw(R"({"alg":"HS256"})", R"({"exp":1e20})")).find("integers"), std::string::npos);
  EXPECT_TRUE(Ok(v, Raw(R"({"alg":"HS256"})", R"({"exp":)" + exp_ok + R"(,"nbf":0,"iat":1799999000})")));
}

TEST(JwtStrict, exp_is_required_unless_allowed_and_is_enforced) {
  JwtVerifier v(Hs());
  EXPECT_EQ(Why(v, Make({{"sub", "u1"}})), "token has no exp (expiry) claim");
  EXPECT_EQ(Why(v, Make({{"sub", "u1"}, {"exp", static_cast<int64_t>(kNow)}})), "token expired");
  EXPECT_EQ(Why(v, Make({{"sub", "u1"}, {"exp", static_cast<int64_t>(kNow) + 60}, {"nbf", static_cast<int64_t>(kNow) + 30}})),
            "token not valid yet");
  EXPECT_EQ(Why(v, Make({{"sub", "u1"}, {"exp", static_cast<int64_t>(kNow) + 60}, {"iat", static_cast<int64_t>(kNow) + 30}})),
            "token issued in the future");
  VerifierConfig c = Hs();
  c.allow_no_exp = true;
  JwtVerifier lax(c);
  std::string error;
  auto r = lax.VerifyToken(Make({{"sub", "u1"}}), &error, kNow);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->expires_at, 0);
  c.leeway_seconds = 30;
  JwtVerifier leeway(c);
  EXPECT_TRUE(Ok(leeway, Make({{"sub", "u1"}, {"exp", static_cast<int64_t>(kNow) - 10}})));
}

TEST(JwtStrict, max_age_requires_iat_and_shortens_the_expiry) {
  VerifierConfig c = Hs();
  c.max_age_seconds = 300;
  JwtVerifier v(c);
  int64_t now = static_cast<int64_t>(kNow);
  EXPECT_EQ(Why(v, Make(Good())), "token has no iat (issued at) claim");
  EXPECT_NE(Why(v, Make({{"exp", now + 600}, {"iat", now - 301}})).find("too old"), std::string::npos);
  std::string error;
  auto r = v.VerifyToken(Make({{"exp", now + 600}, {"iat", now - 100}}), &error, kNow);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->expires_at, now + 200);  // iat + max age comes before exp
  r = v.VerifyToken(Make({{"exp", now + 60}, {"iat", now - 100}}), &error, kNow);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->expires_at, now + 60);
}

TEST(JwtStrict, claims_of_an_unsigned_or_badly_signed_token_are_never_parsed) {
  JwtVerifier v(Hs());
  // Payloads that would fail the claim checks (or JSON parsing) report the signature, proving
  // the claims were not looked at first.
  for (const std::string& payload : {std::string(R"({"exp":1e20})"), std::string("not json"),
                                     std::string(R"({"exp":-1.5,"nbf":"x"})"), std::string("\xff\xfe")}) {
    std::string input = EncodeBase64Url(R"({"alg":"HS256"})") + "." + EncodeBase64Url(payload);
    std::string bad_sig = input + "." + EncodeBase64Url(std::string(32, 'x'));
    EXPECT_EQ(Why(v, bad_sig), "invalid token: signature does not verify") << payload;
    EXPECT_NE(Why(v, input + ".").find("unsigned"), std::string::npos);
  }
  // Signed garbage payloads are refused after the signature, without throwing.
  EXPECT_EQ(Why(v, Raw(R"({"alg":"HS256"})", "not json")), "token payload is not a JSON object");
  EXPECT_EQ(Why(v, Raw(R"({"alg":"HS256"})", "[1,2]")), "token payload is not a JSON object");
  EXPECT_EQ(Why(v, Raw(R"({"alg":"HS256"})", "{\"sub\":\"\xff\"}")), "token payload is not a JSON object");
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256"})", std::string(3000, '[') )));
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256"})", R"({"exp":1800000600,"sub":5})")));
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256"})", R"({"exp":1800000600,"aud":[1]})")));
}

TEST(JwtStrict, a_tampered_payload_or_truncated_signature_fails) {
  JwtVerifier v(Hs());
  std::string t = Make(Good());
  std::string other = Make({{"sub", "admin"}, {"exp", static_cast<int64_t>(kNow) + 600}});
  std::string spliced = other.substr(0, other.rfind('.')) + t.substr(t.rfind('.'));
  EXPECT_FALSE(Ok(v, spliced));
  EXPECT_FALSE(Ok(v, t.substr(0, t.size() - 4)));
  EXPECT_FALSE(Ok(v, t + "AAAA"));
}

TEST(JwtStrict, rs256_es256_eddsa_from_pem) {
  for (auto [type, alg] : {std::pair{"RSA", "RS256"}, std::pair{"EC", "ES256"}, std::pair{"ED25519", "EdDSA"}}) {
    auto key = Gen(type, 2048);
    auto other = Gen(type, 2048);
    VerifierConfig c;
    c.public_key_pem = PublicPem(key.get());
    JwtVerifier v(c);
    EXPECT_EQ(v.Algorithms(), std::vector<std::string>{alg});
    EXPECT_TRUE(Ok(v, Make(Good(), alg, key.get()))) << alg << ": " << Why(v, Make(Good(), alg, key.get()));
    EXPECT_FALSE(Ok(v, Make(Good(), alg, other.get()))) << alg;
    EXPECT_FALSE(Ok(v, Make(Good()))) << alg;  // no HS256 configured
  }
}

TEST(JwtStrict, es256_signature_shapes) {
  auto key = Gen("EC");
  VerifierConfig c;
  c.public_key_pem = PublicPem(key.get());
  JwtVerifier v(c);
  std::string t = Make(Good(), "ES256", key.get());
  std::string input = t.substr(0, t.rfind('.'));
  std::string sig;
  ASSERT_TRUE(DecodeBase64Url(t.substr(t.rfind('.') + 1), &sig));
  EXPECT_TRUE(Ok(v, t));
  EXPECT_FALSE(Ok(v, input + "." + EncodeBase64Url(sig.substr(0, 63))));
  EXPECT_FALSE(Ok(v, input + "." + EncodeBase64Url(std::string(64, '\0'))));
  EXPECT_FALSE(Ok(v, input + "." + EncodeBase64Url(std::string(64, '\xff'))));
  // A DER signature (what OpenSSL emits) is not the JOSE form.
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get());
  size_t len = 0;
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string der(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  der.resize(len);
  EVP_MD_CTX_free(ctx);
  EXPECT_FALSE(Ok(v, input + "." + EncodeBase64Url(der)));
}

TEST(JwtStrict, jwks_keys_are_chosen_by_kid) {
  auto rsa = Gen("RSA", 2048), ec = Gen("EC"), ed = Gen("ED25519"), rsa2 = Gen("RSA", 2048);
  VerifierConfig c;
  c.jwks_json = R"({"keys":[)" + Jwk(rsa.get(), "r1") + "," + Jwk(ec.get(), "e1") + "," + Jwk(ed.get(), "d1") + "," +
                Jwk(rsa2.get(), "r2") + R"(,{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"x"}]})";
  JwtVerifier v(c);
  EXPECT_EQ(v.KeyCount(), 4u);
  EXPECT_TRUE(Ok(v, Make(Good(), "RS256", rsa.get(), "r1")));
  EXPECT_TRUE(Ok(v, Make(Good(), "RS256", rsa2.get(), "r2")));
  EXPECT_TRUE(Ok(v, Make(Good(), "ES256", ec.get(), "e1")));
  EXPECT_TRUE(Ok(v, Make(Good(), "EdDSA", ed.get(), "d1")));
  EXPECT_EQ(Why(v, Make(Good(), "RS256", rsa.get(), "r2")), "invalid token: signature does not verify");
  EXPECT_EQ(Why(v, Make(Good(), "RS256", rsa.get(), "nope")), "unknown key id (kid)");
  EXPECT_NE(Why(v, Make(Good(), "ES256", ec.get(), "r1")).find("not accepted for this kid"), std::string::npos);
  EXPECT_FALSE(Ok(v, Make(Good(), "RS256", rsa.get())));  // kid required for JWKS keys that have one
  // HS256 "signed" with a JWKS RSA key's PEM is not accepted for that kid.
  EXPECT_FALSE(Ok(v, Raw(R"({"alg":"HS256","kid":"r1"})", Good().dump(), nullptr, PublicPem(rsa.get()))));
  Json h = {{"alg", "RS256"}, {"kid", 5}};
  EXPECT_FALSE(Ok(v, Raw(h.dump(), Good().dump(), rsa.get())));
}

TEST(JwtStrict, weak_or_broken_keys_refuse_to_load) {
  VerifierConfig c;
  c.hs256_secret = "e2e-secret";
  try {
    JwtVerifier v(c);
    FAIL() << "a 10-byte secret loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 32 bytes"), std::string::npos) << e.what();
  }
  c.hs256_secret = std::string(31, 'k');
  EXPECT_THROW(JwtVerifier v(c), std::runtime_error);
  c.hs256_secret = std::string(32, 'k');
  EXPECT_NO_THROW(JwtVerifier v(c));

  auto weak = Gen("RSA", 1024);
  VerifierConfig r;
  r.public_key_pem = PublicPem(weak.get());
  try {
    JwtVerifier v(r);
    FAIL() << "a 1024-bit RSA key loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("1024 bits"), std::string::npos) << e.what();
  }
  VerifierConfig j;
  j.jwks_json = R"({"keys":[)" + Jwk(weak.get(), "w") + "]}";
  EXPECT_THROW(JwtVerifier v(j), std::runtime_error);
  for (const std::string& bad :
       {std::string("not json"), std::string("{}"), std::string(R"({"keys":{}})"), std::string(R"({"keys":[]})"),
        std::string(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]})"),
        std::string(R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA=="}]})"),
        std::string(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})")})
  {
    j.jwks_json = bad;
    EXPECT_THROW(JwtVerifier v(j), std::runtime_error) << bad;
  }
  auto ec = Gen("EC");
  j.jwks_json = R"({"keys":[)" + Jwk(ec.get(), "a") + "," + Jwk(ec.get(), "a") + "]}";
  EXPECT_THROW(JwtVerifier v(j), std::runtime_error);  // duplicate kid
}

TEST(JwtStrict, reload_swaps_keys_and_keeps_the_old_ones_on_error) {
  auto a = Gen("ED25519"), b = Gen("ED25519");
  VerifierConfig c;
  c.jwks_json = R"({"keys":[)" + Jwk(a.get(), "a") + "]}";
  JwtVerifier v(c);
  EXPECT_TRUE(Ok(v, Make(Good(), "EdDSA", a.get(), "a")));
  EXPECT_FALSE(Ok(v, Make(Good(), "EdDSA", b.get(), "b")));
  std::string error;
  VerifierConfig bad = c;
  bad.jwks_json = "{";
  EXPECT_FALSE(v.Reload(bad, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(Ok(v, Make(Good(), "EdDSA", a.get(), "a")));
  c.jwks_json = R"({"keys":[)" + Jwk(a.get(), "a") + "," + Jwk(b.get(), "b") + "]}";
  ASSERT_TRUE(v.Reload(c, &error)) << error;
  EXPECT_TRUE(Ok(v, Make(Good(), "EdDSA", b.get(), "b")));
  EXPECT_TRUE(Ok(v, Make(Good(), "EdDSA", a.get(), "a")));
}
