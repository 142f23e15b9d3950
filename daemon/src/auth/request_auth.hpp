// Authenticating an HTTP request: the token from `Authorization: Bearer`, the `evstream_token`
// cookie (EventSource cannot set headers) or the `access_token` query parameter (least safe:
// URLs land in logs), verified by the JwtVerifier, turned into a Principal by the claims rule.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "auth/claims.hpp"
#include "auth/jwt_verifier.hpp"
#include "http/request.hpp"

namespace evstream::auth {

struct AuthResult {
  bool ok = false;
  std::string error;  // why not (for the 401 body)
  nlohmann::json claims;
  Principal principal;
  int64_t expires_at = 0;  // Unix seconds when the token stops being valid; 0 = never
};

// The token from the request, or "" with *error set when the Authorization header is present
// but not a Bearer token (a 401 that says so, rather than falling back to the cookie).
std::string ExtractToken(const http::Request& req, std::string* error = nullptr);
AuthResult Authenticate(const JwtVerifier& verifier, const http::Request& req);

}  // namespace evstream::auth
