// CORS for the configured origins (--cors-origin).
//   An origin listed by name: echoed, with Access-Control-Allow-Credentials: true (the cookie
//   case) and Vary: Origin.
//   `*`: any other origin gets `Access-Control-Allow-Origin: *` — never the echoed Origin and
//   never credentials, so a browser sends no cookie cross-origin and reads no credentialed
//   answer.
#pragma once
#include <string>
#include <vector>

#include "http/request.hpp"
#include "http/response.hpp"

namespace evstream::http {

// Headers to add to a response for this request (empty when the origin is not allowed).
Headers CorsHeaders(const std::vector<std::string>& allowed, const Request& req);
// Answer to a preflight (OPTIONS with Access-Control-Request-Method).
Response CorsPreflight(const std::vector<std::string>& allowed, const Request& req);

}  // namespace evstream::http
