// The HTTP API beside the stream (same tokens and claims rule):
//   POST /api/events                                  append through evstream.post_event
//   GET  /api/events?channel=&after=&limit=&topic=    history in the gap-free order
//   GET  /api/streams/{aggregate_type}/{aggregate_id} one aggregate's history
// Database work goes through the async pool; the loop never blocks.
#pragma once
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

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

// HTTP status for a database error (SQLSTATE; empty = connection failure).
int StatusForSqlState(const std::string& sqlstate);
std::string ErrorCodeForSqlState(const std::string& sqlstate);

// Shared by the API handlers: answer unless the client has gone; a database error as HTTP;
// authenticate or answer 401.
void ReplyTo(const std::weak_ptr<http::Connection>& weak, http::Response r, const http::Headers& extra);
http::Response DbErrorResponse(const feed::QueryResult& r);
bool AuthOrReply(const EventsDeps& d, const http::ConnectionPtr& conn, const http::Request& req,
                 const http::Headers& extra, auth::AuthResult* out);

// The request body as a JSON object, or a 400 answered here: not valid JSON (and at which byte
// offset: {"error":"bad_request","message":…,"offset":N}), nested too deep, or not an object.
// An empty body is {} when allow_empty.
bool BodyOrReply(const http::ConnectionPtr& conn, const http::Request& req, const http::Headers& extra,
                 nlohmann::json* out, bool allow_empty = false);
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

class EventsApi {
 public:
  explicit EventsApi(EventsDeps deps) : d_(deps) {}
  void Post(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);
  void History(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);
  void Stream(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);

 private:
  EventsDeps d_;
};

}  // namespace evstream::api
