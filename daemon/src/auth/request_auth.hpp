// Authenticating an HTTP request: where the token may come from, and the browser rules.
//   Authorization: Bearer <token>  every endpoint, every method.
//   cookie evstream_token           safe methods (GET/HEAD: the stream, history, ...); a write
//                                   (POST) with the cookie also needs the header
//                                   `X-Evstream-CSRF: 1` (a form cannot send it) and an
//                                   allowed Origin (this daemon's own, or one --cors-origin
//                                   names explicitly; `*` never counts).
//   ?access_token=<token>           GET /api/events/stream only (EventSource cannot set
//                                   headers; least safe: URLs land in logs).
// The token is verified by the JwtVerifier and turned into a Principal by the claims rule.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/claims.hpp"
#include "auth/jwt_verifier.hpp"
#include "http/request.hpp"

namespace evstream::auth {

enum class TokenSource { None, Header, Cookie, Query };

// Where a route takes its token from (the header always counts).
struct TokenPolicy {
  bool cookie = true;
  bool query = false;  // ?access_token=: the stream only
};

inline constexpr const char* kCsrfHeader = "x-evstream-csrf";  // value "1"
inline constexpr const char* kCookieName = "evstream_token";

struct AuthResult {
  bool ok = false;
  int status = 401;   // when !ok: 401 (no or bad token) or 403 (cookie write without CSRF proof)
  std::string error;  // why not (for the error body)
  TokenSource source = TokenSource::None;
  nlohmann::json claims;
  Principal principal;
  int64_t expires_at = 0;  // Unix seconds when the token stops being valid; 0 = never
};

// The token and where it came from; empty when none is present in an allowed place
// (*why then says what was found in a place this route does not accept, or that the
// Authorization header is present without the Bearer scheme: a 401 that says so, rather than
// falling back to the cookie).
std::string ExtractToken(const http::Request& req, const TokenPolicy& policy, TokenSource* source,
                         std::string* why);
// May a request authenticated by the cookie write? True for safe methods; for the others the
// CSRF header and an allowed Origin are required (*why says which is missing).
bool CookieMayWrite(const http::Request& req, const std::vector<std::string>& cors_origins, std::string* why);
// True when Origin is this server's own (scheme://Host) or listed explicitly (not `*`).
bool OriginAllowedForWrites(const http::Request& req, const std::vector<std::string>& cors_origins);
bool IsSafeMethod(const std::string& method);

AuthResult Authenticate(const JwtVerifier& verifier, const http::Request& req, const TokenPolicy& policy = {},
                        const std::vector<std::string>& cors_origins = {});

}  // namespace evstream::auth
