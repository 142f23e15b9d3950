// One event loop's side of the daemon (--threads K runs K of them, each on its own thread): an
// HTTP server on the shared port (SO_REUSEPORT), the streams of the connections it accepted, its
// Hub and its view of the feed, and the HTTP API. What is shared — the feed, the pool, presence,
// the publisher, the JWT keys, the static files, the connection limits — belongs to the App on
// loop 0; a Front reaches the pool, presence and the publisher through calls that run on their
// loop and answer on this one.
#pragma once
#include <uv.h>

#include <functional>
#include <memory>
#include <vector>

#include "api/catalog_api.hpp"
#include "api/common.hpp"
#include "api/consumers_api.hpp"
#include "api/events_api.hpp"
#include "api/realtime_api.hpp"
#include "auth/jwt_verifier.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "feed/pool.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "http/static_files.hpp"
#include "hub/fanout.hpp"
#include "hub/hub.hpp"
#include "realtime/presence.hpp"
#include "realtime/publisher.hpp"
#include "sse/stream.hpp"

namespace evstream::api {

// What every Front shares (owned by the App, alive until every loop has stopped).
struct Shared {
  const auth::JwtVerifier* verifier = nullptr;
  feed::PgPool* pool = nullptr;
  realtime::Presence* presence = nullptr;
  realtime::Publisher* publisher = nullptr;
  const http::StaticFiles* static_files = nullptr;
  std::shared_ptr<http::SharedLimits> limits;
  std::shared_ptr<http::TlsContext> tls;  // at start (SIGHUP: SetTls on each loop)
  // Every loop's metrics, for /metrics (complete before any loop accepts a connection); the
  // first is loop 0's, where the feed writes its held-back figures.
  std::vector<const core::Metrics*> all_metrics;
  core::Mailbox* home = nullptr;        // loop 0's mailbox
  CatalogApi* stats_owner = nullptr;   // loop 0's stats cache, the daemon's one
};

class Front {
 public:
  // metrics: this loop's (written by this loop's thread only).
  Front(uv_loop_t* loop, int index, const core::Config& cfg, const Shared* shared, core::Metrics* metrics);
  int Listen(http::Server::Share share);  // libuv error code
  void Start();                 // heartbeats
  void Close();                 // stop accepting, close every connection
  void SetTls(std::shared_ptr<http::TlsContext> tls) { server_.SetTls(std::move(tls)); }
  int Port() const { return server_.BoundPort(); }
  hub::Hub* hub() { return &hub_; }
  hub::FeedView* view() { return &view_; }
  CatalogApi* catalog() { return &catalog_api_; }

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

  int index_;
  core::Config cfg_;
  const Shared* shared_;
  core::Metrics* metrics_;
  hub::Hub hub_;
  hub::FeedView view_;
  sse::StreamService streams_;
  EventsApi events_api_;
  RealtimeApi realtime_api_;
  CatalogApi catalog_api_;
  ConsumersApi consumers_api_;
  http::Server server_;
  http::RouteTable<RouteEntry> routes_;
};

}  // namespace evstream::api
