// GET /api/events/stream: authorise, pick channels and topics, then stream. A client with
// Last-Event-ID is subscribed first (live events buffered), replayed from the log through the
// pool, then switched to live: events at or before the last replayed (tx, position) are
// skipped, so the seam has no duplicate and no gap (the logic: sse/cursor.hpp, pure).
#pragma once
#include <uv.h>

#include <memory>
#include <string>
#include <unordered_set>

#include "auth/jwt_verifier.hpp"
#include "auth/request_auth.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "hub/fanout.hpp"
#include "feed/pool.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "realtime/presence.hpp"

namespace evstream::sse {

class Session;

struct StreamDeps {
  uv_loop_t* loop = nullptr;
  const core::Config* config = nullptr;
  core::Metrics* metrics = nullptr;
  hub::Hub* hub = nullptr;
  hub::FeedView* feed = nullptr;  // this loop's view of the feed
  feed::PgPool* pool = nullptr;
  const auth::JwtVerifier* verifier = nullptr;
  realtime::Presence* presence = nullptr;  // optional
};

class StreamService {
 public:
  explicit StreamService(StreamDeps deps);
  void Start();  // heartbeat timer
  void Close();
  // After the route middleware authenticated the request and chose its channels.
  // extra_headers: e.g. CORS headers for the response head.
  void Handle(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra_headers,
              const auth::AuthResult& a, auth::ChannelSet channels);
  size_t SessionCount() const { return sessions_.size(); }

 private:
  friend class Session;
  void Heartbeat();
  void OnFeedPositioned();

  StreamDeps d_;
  core::UvHandle<uv_timer_t> heartbeat_;
  std::unordered_set<Session*> sessions_;
  std::string connection_prefix_;
  uint64_t next_session_ = 1;
};

}  // namespace evstream::sse
