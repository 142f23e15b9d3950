// The daemon's parts wired together: HTTP server, feed, hub, pool, SSE and HTTP API, and the
// routes between them. main() owns the loop and the signals; App owns everything else.
#pragma once
#include <uv.h>

#include <memory>

#include "api/events_api.hpp"
#include "api/catalog_api.hpp"
#include "api/consumers_api.hpp"
#include "api/openapi.hpp"
#include "api/realtime_api.hpp"
#include "auth/jwt_verifier.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "feed/feed.hpp"
#include "feed/pool.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "realtime/outbox.hpp"
#include "sse/stream.hpp"

namespace evstream::api {

class App {
 public:
  App(uv_loop_t* loop, const core::Config& cfg);  // throws std::runtime_error on bad keys
  int Start();                                      // libuv error code (0 on success)
  void Shutdown();                                  // stop accepting, close everything
  // SIGHUP: re-reads the key files and swaps the verifier's keys; open streams stay. On any
  // error (unreadable file, weak key) the old keys stay and the error is logged.
  bool ReloadKeys();
  int Port() const { return server_.BoundPort(); }

 private:
  void Route(const http::ConnectionPtr& conn, http::Request& req);
  http::Response Health() const;

  uv_loop_t* loop_;
  core::Config cfg_;
  core::Metrics metrics_;
  auth::JwtVerifier verifier_;
  hub::Hub hub_;
  feed::Feed feed_;
  realtime::Outbox outbox_;
  feed::PgPool pool_;
  realtime::Presence presence_;
  realtime::Publisher publisher_;
  sse::StreamService streams_;
  EventsApi events_api_;
  RealtimeApi realtime_api_;
  CatalogApi catalog_api_;
  ConsumersApi consumers_api_;
  http::Server server_;
};

}  // namespace evstream::api
