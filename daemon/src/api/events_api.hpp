// The HTTP API beside the stream (same tokens and claims rule):
//   POST /api/events                                  append through evstream.post_event
//   GET  /api/events?channel=&after=&limit=&topic=    history in the gap-free order
//   GET  /api/streams/{aggregate_type}/{aggregate_id} one aggregate's history
// Database work goes through the async pool; the loop never blocks.
#pragma once
#include <string>

#include "auth/jwt_verifier.hpp"
#include "auth/request_auth.hpp"
#include "core/config.hpp"
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
