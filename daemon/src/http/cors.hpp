// CORS for the configured origins (--cors-origin), credentials allowed (the cookie case).
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
