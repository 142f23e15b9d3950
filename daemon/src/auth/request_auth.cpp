#include "auth/request_auth.hpp"

#include <strings.h>

#include <algorithm>

namespace evstream::auth {

bool IsSafeMethod(const std::string& method) { return method == "GET" || method == "HEAD" || method == "OPTIONS"; }

std::string ExtractToken(const http::Request& req, const TokenPolicy& policy, TokenSource* source,
                         std::string* why) {
  *source = TokenSource::None;
  if (const std::string* h = req.Header("authorization")) {
    if (h->size() > 7 && strncasecmp(h->c_str(), "Bearer ", 7) == 0) {
      std::string t = h->substr(7);
      while (!t.empty() && t.front() == ' ') t.erase(0, 1);
      while (!t.empty() && t.back() == ' ') t.pop_back();
      *source = TokenSource::Header;
      return t;
    }
    if (why)
      *why = "the Authorization header must use the Bearer scheme: \"Authorization: Bearer <token>\"";
    return "";
  }
  if (policy.cookie) {
    if (auto c = req.Cookie(kCookieName)) {
      *source = TokenSource::Cookie;
      return *c;
    }
  }
  if (auto q = req.QueryOne("access_token")) {
    if (policy.query) {
      *source = TokenSource::Query;
      return *q;
    }
    if (why) *why = "?access_token= is accepted only by GET /api/events/stream; send Authorization: Bearer";
  }
  return "";
}

bool OriginAllowedForWrites(const http::Request& req, const std::vector<std::string>& cors_origins) {
  const std::string* origin = req.Header("origin");
  if (!origin || origin->empty() || *origin == "null") return false;
  if (const std::string* host = req.Header("host"); host && !host->empty())
    if (*origin == "http://" + *host || *origin == "https://" + *host) return true;
  return std::find(cors_origins.begin(), cors_origins.end(), *origin) != cors_origins.end();
}

bool CookieMayWrite(const http::Request& req, const std::vector<std::string>& cors_origins, std::string* why) {
  if (IsSafeMethod(req.method)) return true;
  const std::string* csrf = req.Header(kCsrfHeader);
  if (!csrf || *csrf != "1") {
    *why = "the evstream_token cookie authorises writes only with the header X-Evstream-CSRF: 1 "
           "(or send Authorization: Bearer)";
    return false;
  }
  if (!OriginAllowedForWrites(req, cors_origins)) {
    *why = "the evstream_token cookie authorises writes only from this server's origin or an origin "
           "named by --cors-origin (Origin missing or not allowed)";
    return false;
  }
  return true;
}

AuthResult Authenticate(const JwtVerifier& verifier, const http::Request& req, const TokenPolicy& policy,
                        const std::vector<std::string>& cors_origins) {
  AuthResult r;
  std::string why;
  std::string token = ExtractToken(req, policy, &r.source, &why);
  if (token.empty()) {
    r.error = !why.empty() ? why
              : policy.query ? "missing token (Authorization: Bearer, cookie evstream_token, or access_token)"
                             : "missing token (Authorization: Bearer, or cookie evstream_token for reads)";
    return r;
  }
  if (r.source == TokenSource::Cookie && !CookieMayWrite(req, cors_origins, &r.error)) {
    r.status = 403;
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
