// The daemon's parts wired together: HTTP server, feed, hub, pool, SSE and HTTP API, and the
// routes between them. main() owns the loop and the signals; App owns everything else.
#pragma once
#include <uv.h>

#include <functional>
#include <memory>

#include "api/common.hpp"
#include "api/events_api.hpp"
#include "api/catalog_api.hpp"
#include "api/consumers_api.hpp"
#include "api/openapi.hpp"
#include "api/realtime_api.hpp"
#include "auth/jwt_verifier.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/feed.hpp"
#include "feed/pool.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "http/static_files.hpp"
#include "hub/hub.hpp"
#include "realtime/outbox.hpp"
#include "sse/stream.hpp"

namespace evstream::api {

class App {
 public:
  App(uv_loop_t* loop, const core::Config& cfg);  // throws std::runtime_error on bad keys
  int Start();                                      // libuv error code (0 on success)
  // Reads the static files into memory; false with *error when --web-root is too large.
  bool LoadStatic(std::string* error);
  void Shutdown();                                  // stop accepting, close everything
  // SIGHUP: re-reads the key files and swaps the verifier's keys; open streams stay. On any
  // error (unreadable file, weak key) the old keys stay and the error is logged.
  bool ReloadKeys();
  // SIGHUP too: re-reads --tls-cert/--tls-key; new handshakes use them, open connections keep
  // theirs. On error the old certificate stays and the error is logged.
  bool ReloadTls();
  int Port() const { return server_.BoundPort(); }

 private:
  // What a route needs before its handler runs (the middleware reads these).
  struct RouteOptions {
    bool auth = true;             // a verified token is required
    bool query_token = false;     // ?access_token= accepted (the stream only)
    bool channels = false;        // choose channels from ?channel= (and X-Project-Id)
    bool project_header = false;  // X-Project-Id adds project:<id> to the request
  };
  struct RouteEntry {
    RouteOptions options;
    std::function<void(Call&)> handler;
  };
  void BuildRoutes();
  void AddRoute(const std::string& path, bool prefix, std::vector<std::string> methods, RouteOptions o,
                std::function<void(Call&)> handler);
  // The middleware: CORS -> route -> authentication (+ per-sub limit) -> body type -> channel
  // choice -> handler.
  void Route(const http::ConnectionPtr& conn, http::Request& req);
  http::Response Health() const;
  // --stats-fold-ms: one evstream._stats_fold() at a time on the pool, so the stats summary keeps
  // up with the log whether or not anyone asks for stats.
  void FoldStats();

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
  http::RouteTable<RouteEntry> routes_;
  http::StaticFiles static_files_;
  core::UvHandle<uv_timer_t> stats_fold_timer_;
  bool stats_fold_running_ = false;
};

}  // namespace evstream::api
