// JWT verification against tokens made by the openssl CLI (data/make_tokens.sh), never by cpp-jwt.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "auth/jwt_verifier.hpp"

namespace {
using evstream::auth::JwtVerifier;
using evstream::auth::VerifierConfig;

std::string ReadFile(const std::string& name) {
  std::ifstream in(std::string(EVSTREAM_TEST_DATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::map<std::string, std::string>& Tokens() {
  static std::map<std::string, std::string> tokens = [] {
    std::map<std::string, std::string> t;
    std::istringstream in(ReadFile("tokens.txt"));
    std::string name, token;
    while (in >> name >> token) t[name] = token;
    return t;
  }();
  return tokens;
}

VerifierConfig Hs() {
  VerifierConfig c;
  c.hs256_secret = "unit-test-secret-of-at-least-32-bytes";
  return c;
}
VerifierConfig Rsa() {
  VerifierConfig c;
  c.public_key_pem = ReadFile("rsa_public.pem");
  return c;
}

bool Accepts(const JwtVerifier& v, const std::string& name, std::string* why = nullptr) {
  std::string error;
  auto claims = v.Verify(Tokens().at(name), &error);
  if (why) *why = error;
  return claims.has_value();
}
}  // namespace

TEST(Jwt, fixtures_are_present) { EXPECT_EQ(Tokens().size(), 13u); }

TEST(Jwt, hs256_valid_token_yields_its_claims) {
  JwtVerifier v(Hs());
  std::string error;
  auto claims = v.Verify(Tokens().at("hs256_valid"), &error);
  ASSERT_TRUE(claims) << error;
  EXPECT_EQ((*claims)["sub"], "u1");
  EXPECT_EQ((*claims)["projects"][0], "p1");
}

TEST(Jwt, rejects_alg_none) {
  JwtVerifier v(Hs());
  std::string why;
  EXPECT_FALSE(Accepts(v, "none_alg", &why));
  EXPECT_NE(why.find("not accepted"), std::string::npos) << why;
}

TEST(Jwt, rejects_expired_and_not_yet_valid) {
  JwtVerifier v(Hs());
  EXPECT_FALSE(Accepts(v, "hs256_expired"));
  EXPECT_FALSE(Accepts(v, "hs256_not_yet_valid"));
}

TEST(Jwt, rejects_wrong_secret_and_tampered_payload) {
  JwtVerifier v(Hs());
  EXPECT_FALSE(Accepts(v, "hs256_wrong_secret"));
  EXPECT_FALSE(Accepts(v, "hs256_tampered"));
}

TEST(Jwt, rejects_algorithms_outside_the_allow_list) {
  JwtVerifier hs(Hs());
  EXPECT_FALSE(Accepts(hs, "hs512_valid"));  // correctly signed, but HS512 is not allowed
  EXPECT_FALSE(Accepts(hs, "rs256_valid"));  // no RSA key configured
  JwtVerifier rsa(Rsa());
  EXPECT_FALSE(Accepts(rsa, "hs256_valid"));  // no secret configured
}

TEST(Jwt, rs256_valid_accepted_tampered_rejected) {
  JwtVerifier v(Rsa());
  std::string why;
  EXPECT_TRUE(Accepts(v, "rs256_valid", &why)) << why;
  EXPECT_FALSE(Accepts(v, "rs256_tampered"));
}

TEST(Jwt, hs256_signed_with_the_rsa_public_key_is_a_forgery) {
  JwtVerifier only_rsa(Rsa());
  EXPECT_FALSE(Accepts(only_rsa, "hs256_keyed_with_rsa_public_key"));
  VerifierConfig both = Rsa();
  both.hs256_secret = "unit-test-secret-of-at-least-32-bytes";
  JwtVerifier v(both);
  EXPECT_FALSE(Accepts(v, "hs256_keyed_with_rsa_public_key"));
  EXPECT_TRUE(Accepts(v, "rs256_valid"));
  EXPECT_TRUE(Accepts(v, "hs256_valid"));
}

TEST(Jwt, es256_valid_accepted) {
  VerifierConfig c;
  c.public_key_pem = ReadFile("ec_public.pem");
  JwtVerifier v(c);
  std::string why;
  EXPECT_TRUE(Accepts(v, "es256_valid", &why)) << why;
  EXPECT_FALSE(Accepts(v, "rs256_valid"));
  EXPECT_EQ(v.Algorithms(), std::vector<std::string>{"ES256"});
}

TEST(Jwt, audience_and_issuer_are_enforced) {
  VerifierConfig c = Hs();
  c.audience = "evstream";
  c.issuer = "https://issuer.example";
  JwtVerifier v(c);
  std::string why;
  EXPECT_TRUE(Accepts(v, "hs256_aud_iss", &why)) << why;
  EXPECT_TRUE(Accepts(v, "hs256_aud_list", &why)) << why;
  EXPECT_FALSE(Accepts(v, "hs256_valid"));  // no aud/iss
  c.audience = "someone-else";
  JwtVerifier wrong_aud(c);
  EXPECT_FALSE(Accepts(wrong_aud, "hs256_aud_iss"));
  c.audience = "evstream";
  c.issuer = "https://evil.example";
  JwtVerifier wrong_iss(c);
  EXPECT_FALSE(Accepts(wrong_iss, "hs256_aud_iss"));
}

TEST(Jwt, garbage_is_rejected_without_throwing) {
  JwtVerifier v(Hs());
  std::string why;
  for (const char* t : {"", "abc", "a.b", "a.b.c", "....", "eyJhbGciOjF9.e30.", "e30.e30.e30"})
    EXPECT_FALSE(v.Verify(t, &why)) << t;
}

TEST(Jwt, a_non_key_file_is_refused_at_startup) {
  VerifierConfig c;
  c.public_key_pem = "not a key";
  EXPECT_THROW(JwtVerifier v(c), std::runtime_error);
}
