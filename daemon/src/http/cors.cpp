#include "http/cors.hpp"

#include <algorithm>

namespace evstream::http {

Headers CorsHeaders(const std::vector<std::string>& allowed, const Request& req) {
  Headers h;
  const std::string* origin = req.Header("origin");
  if (!origin || origin->empty() || allowed.empty()) return h;
  bool named = *origin != "*" && std::find(allowed.begin(), allowed.end(), *origin) != allowed.end();
  bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
  if (named) {
    // Echo a named origin (browsers refuse "*" together with credentials).
    h.emplace_back("Access-Control-Allow-Origin", *origin);
    h.emplace_back("Access-Control-Allow-Credentials", "true");
    h.emplace_back("Vary", "Origin");
  } else if (any) {
    h.emplace_back("Access-Control-Allow-Origin", "*");
  } else {
    return h;
  }
  h.emplace_back("Access-Control-Expose-Headers", "Content-Type, Location, Retry-After");
  return h;
}

Response CorsPreflight(const std::vector<std::string>& allowed, const Request& req) {
  Response r;
  r.status = 204;
  r.headers = CorsHeaders(allowed, req);
  if (!r.headers.empty()) {
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    r.headers.emplace_back("Access-Control-Allow-Headers",
                           "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Project-Id, X-Evstream-CSRF");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
  }
  return r;
}

}  // namespace evstream::http
