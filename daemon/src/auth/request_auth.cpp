#include "auth/request_auth.hpp"

#include <strings.h>

namespace evstream::auth {

std::string ExtractToken(const http::Request& req, std::string* error) {
  if (const std::string* h = req.Header("authorization")) {
    if (h->size() > 7 && strncasecmp(h->c_str(), "Bearer ", 7) == 0) {
      std::string t = h->substr(7);
      while (!t.empty() && t.front() == ' ') t.erase(0, 1);
      while (!t.empty() && t.back() == ' ') t.pop_back();
      return t;
    }
    if (error)
      *error = "the Authorization header must use the Bearer scheme: \"Authorization: Bearer <token>\"";
    return "";
  }
  if (auto c = req.Cookie("evstream_token")) return *c;
  if (auto q = req.QueryOne("access_token")) return *q;
  return "";
}

AuthResult Authenticate(const JwtVerifier& verifier, const http::Request& req) {
  AuthResult r;
  std::string scheme_error;
  std::string token = ExtractToken(req, &scheme_error);
  if (!scheme_error.empty()) {
    r.error = scheme_error;
    return r;
  }
  if (token.empty()) {
    r.error = "missing token (Authorization: Bearer, cookie evstream_token, or access_token)";
    return r;
  }
  auto verified = verifier.VerifyToken(token, &r.error);
  if (!verified) return r;
  r.ok = true;
  r.claims = std::move(verified->claims);
  r.expires_at = verified->expires_at;
  r.principal = PrincipalFromClaims(r.claims);
  return r;
}

}  // namespace evstream::auth
