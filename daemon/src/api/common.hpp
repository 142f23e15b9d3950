// What every HTTP API handler shares, in one place: its dependencies, the Call the middleware
// hands it (connection, request, CORS headers, the authenticated principal, the chosen
// channels, the fairness key), replying (now or after a query), database errors as HTTP, and
// small typed readers of outside input.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "auth/claims.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/request_auth.hpp"
#include "core/config.hpp"
#include "core/guard.hpp"
#include "core/input.hpp"
#include "core/metrics.hpp"
#include "feed/pool.hpp"
#include "http/server.hpp"

namespace evstream::api {

struct EventsDeps {
  const core::Config* config = nullptr;
  core::Metrics* metrics = nullptr;
  feed::PgPool* pool = nullptr;
  const auth::JwtVerifier* verifier = nullptr;
};

// Answers a request later (after a query): nothing happens when the client has gone.
struct Replier {
  std::weak_ptr<http::Connection> conn;
  http::Headers extra;  // CORS
  bool head = false;
  void operator()(http::Response r) const;
};

// One request on its way through the middleware (CORS -> authentication -> channel choice)
// to its handler.
struct Call {
  http::ConnectionPtr conn;
  http::Request& req;
  http::Headers cors;       // added to every answer
  auth::AuthResult auth;    // ok when the route requires a token
  auth::ChannelSet channels;  // set for routes that choose channels
  std::string client_key;   // fairness key for the pool: "sub:<sub>" or "addr:<ip>"

  void Reply(http::Response r) const { Later()(std::move(r)); }
  Replier Later() const { return Replier{conn, cors, req.method == "HEAD"}; }
};

// HTTP status for a database error (SQLSTATE; empty = connection failure or overload).
int StatusForSqlState(const std::string& sqlstate);
std::string ErrorCodeForSqlState(const std::string& sqlstate);
// A failed query as an HTTP answer (503 with Retry-After when the pool is full or the
// database unreachable).
http::Response DbErrorResponse(const feed::QueryResult& r);

// Typed reads of outside input (strict: digits only, within [min, max]).
bool ParseInt(const std::string& s, long long min, long long max, long long* out);
bool HasRole(const nlohmann::json& claims, const std::string& role);

// The request body as a JSON object, or a 400 answered here: not valid JSON (and at which byte
// offset: {"error":"bad_request","message":…,"offset":N}), nested too deep, or not an object.
// An empty body is {} when allow_empty.
bool BodyOrReply(const Call& c, nlohmann::json* out, bool allow_empty = false);
// A 400 for the first problem the typed accessors found: {"error":"bad_request","message":
// "<field> must be …","field":"<field>"}.
http::Response FieldError(const core::Fields& f);

// A pool (or publisher) callback for a request, inside the exception boundary: when fn throws,
// the client gets 500 and its connection closes (the one thing this query concerns).
template <typename Fn>
auto ForRequest(std::weak_ptr<http::Connection> weak, Fn fn) {
  return [weak = std::move(weak), fn = std::move(fn)](auto&&... args) mutable {
    core::Guard("request callback", [&] { fn(std::forward<decltype(args)>(args)...); }, [&] {
      if (auto c = weak.lock()) c->Fail();
    });
  };
}

}  // namespace evstream::api
