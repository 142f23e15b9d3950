#include "api/app.hpp"

#include "core/log.hpp"
#include "http/cors.hpp"
#include "http/static_files.hpp"

namespace evstream::api {
namespace {
auth::VerifierConfig VerifierFrom(const core::Config& c) {
  auth::VerifierConfig v;
  v.hs256_secret = c.jwt_secret;
  v.hs256_secret_source = c.jwt_secret_file.empty() ? "--jwt-secret" : "--jwt-secret-file " + c.jwt_secret_file;
  v.public_key_pem = c.jwt_public_key_pem;
  v.jwks_json = c.jwt_jwks_json;
  v.allow_no_exp = c.jwt_allow_no_exp;
  v.max_age_seconds = c.jwt_max_age_seconds;
  v.audience = c.jwt_audience;
  v.issuer = c.jwt_issuer;
  v.leeway_seconds = c.jwt_leeway_seconds;
  return v;
}
http::ServerOptions ServerFrom(const core::Config& c) {
  http::ServerOptions o;
  o.max_body_bytes = c.max_body_bytes;
  o.max_queue_bytes = c.max_queue_bytes * 2 + 65536;  // hard limit; sessions keep below it
  o.max_connections = c.max_connections;
  return o;
}
}  // namespace

App::App(uv_loop_t* loop, const core::Config& cfg)
    : loop_(loop), cfg_(cfg), verifier_(VerifierFrom(cfg)), hub_(),
      feed_(loop, feed::FeedOptions{cfg.database_url, cfg.batch_size, cfg.held_back_ms, cfg.poll_ms}, &hub_, &metrics_),
      outbox_(loop, realtime::OutboxOptions{cfg.database_url, cfg.batch_size, cfg.held_back_ms, cfg.poll_ms,
                                                      cfg.outbox_retention_ms},
              &metrics_),
      pool_(loop, cfg.database_url, cfg.db_pool_size),
      presence_(loop, realtime::PresenceOptions{cfg.presence_heartbeat_ms, cfg.presence_expiry_ms, cfg.typing_ttl_ms,
                                                   cfg.presence_leave_grace_ms},
                &hub_, &pool_, &metrics_),
      publisher_(loop, &pool_, &metrics_, cfg.coalesce_ms),
      streams_(sse::StreamDeps{loop, &cfg_, &metrics_, &hub_, &feed_, &pool_, &verifier_, &presence_}),
      events_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      realtime_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}, &publisher_, &presence_),
      catalog_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      consumers_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      server_(loop, ServerFrom(cfg), [this](const http::ConnectionPtr& c, http::Request& r) { Route(c, r); },
              &metrics_) {}

int App::Start() {
  int rc = server_.Listen(cfg_.listen_host, cfg_.listen_port);
  if (rc != 0) return rc;
  // Ephemeral events and presence messages: rows of the outbox only (never a NOTIFY payload).
  outbox_.on_row = [this](const realtime::OutboxRow& row) {
    if (row.kind == realtime::OutboxRow::Kind::Presence) return presence_.OnMessage(row.payload);
    feed::EphemeralPtr ev = feed::EphemeralFromOutbox(row.channel, row.type, row.payload);
    if (!ev) {
      metrics_.outbox_rows_invalid++;
      return;
    }
    metrics_.ephemeral_received++;
    presence_.OnEphemeral(*ev);
    hub_.PublishEphemeral(ev);
  };
  outbox_.on_ready = [this] { presence_.OnListening(); };
  feed_.Start();
  outbox_.Start();
  presence_.Start();
  pool_.Start();
  streams_.Start();
  return 0;
}

bool App::ReloadKeys() {
  core::Config next = cfg_;
  std::string error;
  if (!core::LoadKeyFiles(&next, &error) || !verifier_.Reload(VerifierFrom(next), &error)) {
    core::LogError("key reload failed; the previous keys stay in use", {{"error", error}});
    return false;
  }
  cfg_.jwt_secret = next.jwt_secret;
  cfg_.jwt_public_key_pem = next.jwt_public_key_pem;
  cfg_.jwt_jwks_json = next.jwt_jwks_json;
  core::LogInfo("keys reloaded", {{"keys", verifier_.KeyCount()}, {"algorithms", verifier_.Algorithms()},
                                  {"streams", streams_.SessionCount()}});
  return true;
}

void App::Shutdown() {
  server_.Close();
  streams_.Close();
  presence_.Close();
  publisher_.Close();
  outbox_.Close();
  feed_.Close();
  pool_.Close();
}

http::Response App::Health() const {
  nlohmann::json j = {{"status", "ok"}, {"position", feed_.Cursor().position}};
  if (!feed_.Connected()) {
    j["status"] = "unavailable";
    j["reason"] = "database disconnected";
    return http::Json(503, j);
  }
  if (!feed_.Positioned()) {
    j["status"] = "unavailable";
    j["reason"] = "feed starting";
    return http::Json(503, j);
  }
  return http::Json(200, j);
}

void App::Route(const http::ConnectionPtr& conn, http::Request& req) {
  http::Headers cors = http::CorsHeaders(cfg_.cors_origins, req);
  auto respond = [&](http::Response r) {
    for (const auto& h : cors) r.headers.push_back(h);
    if (req.method == "HEAD") r.head_only = true;
    conn->Respond(r);
  };
  const std::string& path = req.path;
  const std::string& m = req.method;
  if (m == "OPTIONS") {
    conn->Respond(http::CorsPreflight(cfg_.cors_origins, req));
    return;
  }
  bool get = m == "GET" || m == "HEAD";
  if (path == "/healthz") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return respond(Health());
  }
  if (path == "/metrics") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    http::Response r;
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = metrics_.Render();
    return respond(r);
  }
  if (path == "/api/events/stream") {
    if (m != "GET") return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    streams_.Handle(conn, req, cors);
    return;
  }
  if (path == "/api/events") {
    if (m == "POST") return events_api_.Post(conn, req, cors);
    if (get) return events_api_.History(conn, req, cors);
    return respond(http::JsonError(405, "method_not_allowed", "use GET or POST"));
  }
  if (path.rfind("/api/events/", 0) == 0) {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return catalog_api_.Event(conn, req, cors);
  }
  if (path == "/api/event-types") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return catalog_api_.EventTypes(conn, req, cors);
  }
  if (path == "/api/stats") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return catalog_api_.Stats(conn, req, cors);
  }
  if (path.rfind("/api/consumers/", 0) == 0) return consumers_api_.Handle(conn, req, cors);
  if (path == "/api/openapi.json") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    http::Response r = http::JsonRaw(200, OpenApiJson());
    return respond(r);
  }
  if (path == "/api/publish") {
    if (m != "POST") return respond(http::JsonError(405, "method_not_allowed", "use POST"));
    return realtime_api_.Publish(conn, req, cors);
  }
  if (path == "/api/presence") {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return realtime_api_.PresenceList(conn, req, cors);
  }
  if (path.rfind("/api/streams/", 0) == 0) {
    if (!get) return respond(http::JsonError(405, "method_not_allowed", "use GET"));
    return events_api_.Stream(conn, req, cors);
  }
  if (path.rfind("/api/", 0) == 0) return respond(http::JsonError(404, "not_found", "no such endpoint"));
  if (!cfg_.web_root.empty() && get) return respond(http::ServeStatic(cfg_.web_root, req));
  respond(http::JsonError(404, "not_found", "no such endpoint"));
}

}  // namespace evstream::api
