#include "api/app.hpp"

#include <cctype>
#include <stdexcept>

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
  o.max_connections_per_address = c.max_connections_per_address;
  o.max_connections_per_sub = c.max_connections_per_sub;
  o.max_pending_bytes = c.max_pending_bytes;
  o.header_timeout_ms = c.header_timeout_ms;
  o.body_timeout_ms = c.body_timeout_ms;
  o.idle_timeout_ms = c.idle_timeout_ms;
  o.h2_max_concurrent_streams = static_cast<uint32_t>(c.h2_max_concurrent_streams);
  for (const auto& p : c.trusted_proxies) {
    std::string unused;
    o.trusted_proxies.Add(p, &unused);  // checked when the flag was parsed
  }
  return o;
}
feed::FeedOptions FeedFrom(const core::Config& c) {
  feed::FeedOptions f;
  f.conninfo = c.database_url;
  f.batch_size = c.batch_size;
  f.held_back_ms = c.held_back_ms;
  f.poll_ms = c.poll_ms;
  f.pg_options = feed::OptionsWithStatementTimeout(c.database_url, c.statement_timeout_ms);
  return f;
}
realtime::OutboxOptions OutboxFrom(const core::Config& c) {
  realtime::OutboxOptions o;
  o.conninfo = c.database_url;
  o.batch_size = c.batch_size;
  o.gap_recheck_ms = c.held_back_ms;
  o.poll_ms = c.poll_ms;
  o.retention_ms = c.outbox_retention_ms;
  o.pg_options = feed::OptionsWithStatementTimeout(c.database_url, c.statement_timeout_ms);
  return o;
}
feed::PoolOptions PoolFrom(const core::Config& c) {
  feed::PoolOptions p;
  p.size = c.db_pool_size;
  p.max_queued = static_cast<size_t>(c.db_queue);
  p.max_queued_per_client = static_cast<size_t>(c.db_queue_per_client);
  p.statement_timeout_ms = c.statement_timeout_ms;
  return p;
}
}  // namespace

App::App(uv_loop_t* loop, const core::Config& cfg)
    : loop_(loop), cfg_(cfg), verifier_(VerifierFrom(cfg)), hub_(),
      feed_(loop, FeedFrom(cfg), &hub_, &metrics_),
      outbox_(loop, OutboxFrom(cfg), &metrics_),
      pool_(loop, cfg.database_url, PoolFrom(cfg)),
      presence_(loop, realtime::PresenceOptions{cfg.presence_heartbeat_ms, cfg.presence_expiry_ms, cfg.typing_ttl_ms,
                                                   cfg.presence_leave_grace_ms},
                &hub_, &pool_, &metrics_),
      publisher_(loop, cfg.database_url, feed::OptionsWithStatementTimeout(cfg.database_url, cfg.statement_timeout_ms),
                 &metrics_, cfg.coalesce_ms),
      streams_(sse::StreamDeps{loop, &cfg_, &metrics_, &hub_, &feed_, &pool_, &verifier_, &presence_}),
      events_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      realtime_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}, &publisher_, &presence_),
      catalog_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      consumers_api_(EventsDeps{&cfg_, &metrics_, &pool_, &verifier_}),
      server_(loop, ServerFrom(cfg), [this](const http::ConnectionPtr& c, http::Request& r) { Route(c, r); },
              &metrics_) {
  std::string error;
  if (!LoadStatic(&error)) throw std::runtime_error(error);
  if (!cfg_.tls_cert_file.empty()) {
    auto tls = http::TlsContext::Load(cfg_.tls_cert_file, cfg_.tls_key_file, &error);
    if (!tls) throw std::runtime_error(error);
    server_.SetTls(std::move(tls));
  }
  BuildRoutes();
  if (uv_timer_init(loop_, stats_fold_timer_.get()) == 0) stats_fold_timer_.MarkInitialised();
  stats_fold_timer_->data = this;
}

bool App::ReloadTls() {
  if (cfg_.tls_cert_file.empty()) return true;
  std::string error;
  auto tls = http::TlsContext::Load(cfg_.tls_cert_file, cfg_.tls_key_file, &error);
  if (!tls) {
    core::LogError("certificate reload failed; the previous certificate stays in use", {{"error", error}});
    return false;
  }
  server_.SetTls(std::move(tls));
  core::LogInfo("certificate reloaded", {{"cert", cfg_.tls_cert_file}, {"connections", server_.ConnectionCount()}});
  return true;
}

bool App::LoadStatic(std::string* error) {
  if (cfg_.web_root.empty()) return true;
  if (!static_files_.Load(cfg_.web_root, cfg_.web_max_bytes, error)) return false;
  core::LogInfo("static files loaded", {{"root", cfg_.web_root}, {"files", static_files_.Files()},
                                        {"bytes", static_files_.Bytes()}});
  return true;
}

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
  // The feed's connection is the instance's one listener: it passes the ephemeral doorbell on.
  feed_.on_ephemeral_doorbell = [this](int be_pid) { outbox_.OnDoorbell(be_pid); };
  feed_.on_listening = [this] { outbox_.OnListening(); };
  feed_.on_listener_lost = [this] { outbox_.OnListenerLost(); };
  // This instance's own publications: handed out from the publish answer, and the doorbells of
  // the publisher's commits need no read here (other instances read those rows).
  publisher_.on_rows = [this](const std::vector<realtime::OutboxRow>& rows) { outbox_.HandOwn(rows); };
  publisher_.on_writer = [this](int pid) { outbox_.SetOwnWriter(pid); };
  publisher_.on_lost = [this] { outbox_.LostOwn(); };
  feed_.Start();
  outbox_.Start();
  presence_.Start();
  pool_.Start();
  publisher_.Start();
  streams_.Start();
  if (cfg_.stats_fold_ms > 0 && stats_fold_timer_.initialised()) {
    auto every = static_cast<uint64_t>(cfg_.stats_fold_ms);
    int timer_rc = uv_timer_start(stats_fold_timer_.get(), [](uv_timer_t* t) {
      core::Guard("stats fold tick", [&] { static_cast<App*>(t->data)->FoldStats(); });
    }, every, every);
    if (timer_rc != 0) core::LogWarn("stats fold timer not started", {{"error", uv_err_name(timer_rc)}});
  }
  return 0;
}

void App::FoldStats() {
  if (stats_fold_running_) return;
  stats_fold_running_ = true;
  pool_.Query("SELECT evstream._stats_fold()", {}, [this](feed::QueryResult& r) {
    stats_fold_running_ = false;
    // Another folder holding the summary, or the database away: the next tick tries again.
    core::Guard("stats fold result", [&] {
      if (!r.ok()) core::LogDebug("stats fold failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
    });
  });
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
  if (stats_fold_timer_.initialised()) uv_timer_stop(stats_fold_timer_.get());
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
  // Still healthy, but say who holds delivery back once it passes a second.
  if (metrics_.held_back_seconds >= 1.0)
    j["held_back"] = {{"seconds", metrics_.held_back_seconds}, {"events", metrics_.held_back_events},
                      {"pid", metrics_.held_back_pid}, {"database", metrics_.held_back_database},
                      {"state", metrics_.held_back_state}, {"open_seconds", metrics_.held_back_open_seconds}};
  return http::Json(200, j);
}

namespace {
// A POST body must be JSON (a form or a plain `fetch` cannot send application/json cross-origin
// without a preflight). An empty body without a Content-Type is allowed.
bool IsJsonContentType(const http::Request& req) {
  const std::string* ct = req.Header("content-type");
  if (!ct) return req.body.empty();
  std::string media = ct->substr(0, ct->find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.erase(0, 1);
  for (auto& ch : media) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return media == "application/json";
}
}  // namespace

void App::AddRoute(const std::string& path, bool prefix, std::vector<std::string> methods, RouteOptions o,
                   std::function<void(Call&)> handler) {
  routes_.Add(path, prefix, std::move(methods), RouteEntry{o, std::move(handler)});
}

// The one table of everything the daemon answers (static files are the fallback for GET).
void App::BuildRoutes() {
  RouteOptions open;
  open.auth = false;
  RouteOptions token;
  RouteOptions chosen;
  chosen.channels = true;
  RouteOptions chosen_project = chosen;
  chosen_project.project_header = true;
  RouteOptions stream = chosen_project;
  stream.query_token = true;

  AddRoute("/healthz", false, {"GET"}, open, [this](Call& c) { c.Reply(Health()); });
  AddRoute("/metrics", false, {"GET"}, open, [this](Call& c) {
    http::Response r;
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    metrics_.db_queued = static_cast<int64_t>(pool_.Queued());
    r.body = metrics_.Render();
    c.Reply(r);
  });
  AddRoute("/api/openapi.json", false, {"GET"}, open, [](Call& c) { c.Reply(http::JsonRaw(200, OpenApiJson())); });
  AddRoute("/api/events/stream", false, {"GET"}, stream, [this](Call& c) {
    if (c.req.method == "HEAD") return c.Reply(http::JsonError(405, "method_not_allowed", "use GET"));
    streams_.Handle(c.conn, c.req, c.cors, c.auth, std::move(c.channels));
  });
  AddRoute("/api/events", false, {"POST"}, token, [this](Call& c) { events_api_.Post(c); });
  AddRoute("/api/events", false, {"GET"}, chosen_project, [this](Call& c) { events_api_.History(c); });
  AddRoute("/api/events/", true, {"GET"}, token, [this](Call& c) { catalog_api_.Event(c); });
  AddRoute("/api/event-types", false, {"GET"}, token, [this](Call& c) { catalog_api_.EventTypes(c); });
  AddRoute("/api/stats", false, {"GET"}, chosen, [this](Call& c) { catalog_api_.Stats(c); });
  AddRoute("/api/consumers/", true, {"POST"}, token, [this](Call& c) { consumers_api_.Handle(c); });
  AddRoute("/api/publish", false, {"POST"}, token, [this](Call& c) { realtime_api_.Publish(c); });
  AddRoute("/api/presence", false, {"GET"}, token, [this](Call& c) { realtime_api_.PresenceList(c); });
  AddRoute("/api/streams/", true, {"GET"}, token, [this](Call& c) { events_api_.Stream(c); });
}

void App::Route(const http::ConnectionPtr& conn, http::Request& req) {
  Call c{conn, req, http::CorsHeaders(cfg_.cors_origins, req), {}, {}, {}};
  // 1. CORS: preflights are answered here; every other answer carries c.cors.
  if (req.method == "OPTIONS") {
    conn->Respond(http::CorsPreflight(cfg_.cors_origins, req));
    return;
  }
  c.client_key = "addr:" + conn->address();
  // 2. The route (404 / 405 with Allow); GET outside /api/ falls back to static files.
  auto found = routes_.Find(req.method, req.path);
  if (found.status == 404) {
    bool get = req.method == "GET" || req.method == "HEAD";
    if (req.path.rfind("/api/", 0) != 0 && !cfg_.web_root.empty() && get)
      return c.Reply(static_files_.Serve(req));
    return c.Reply(http::JsonError(404, "not_found", "no such endpoint"));
  }
  if (found.status == 405) {
    http::Response r = http::JsonError(405, "method_not_allowed", "use " + found.allow);
    r.headers.emplace_back("Allow", found.allow);
    return c.Reply(r);
  }
  const RouteEntry& route = *found.value;
  // 3. Authentication: where the token may come from, and the cookie's CSRF rule.
  if (route.options.auth) {
    auth::TokenPolicy policy;
    policy.query = route.options.query_token;
    c.auth = auth::Authenticate(verifier_, req, policy, cfg_.cors_origins);
    if (!c.auth.ok) {
      if (c.auth.status == 403) {
        metrics_.forbidden++;
        return c.Reply(http::JsonError(403, "csrf", c.auth.error));
      }
      metrics_.auth_failures++;
      return c.Reply(http::JsonError(401, "unauthorized", c.auth.error));
    }
    // Fair limits: this connection now counts against the token's sub.
    if (const std::string& sub = c.auth.principal.sub; !sub.empty()) {
      c.client_key = "sub:" + sub;
      if (!conn->ClaimSub(sub)) {
        metrics_.limited++;
        http::Response r = http::JsonError(
            429, "too_many_connections",
            "too many connections for this token's sub (limit " + std::to_string(cfg_.max_connections_per_sub) + ")");
        r.headers.emplace_back("Retry-After", conn->RetryAfter());
        return c.Reply(r);
      }
    }
  }
  // 4. Bodies: JSON only.
  if (req.method == "POST" && !IsJsonContentType(req))
    return c.Reply(http::JsonError(415, "unsupported_media_type",
                                   "POST bodies must be sent with Content-Type: application/json"));
  // 5. Channel choice: ?channel= (repeatable) and X-Project-Id, within the token's grants.
  if (route.options.channels) {
    std::vector<std::string> requested = req.QueryAll("channel");
    if (route.options.project_header)
      if (const std::string* p = req.Header("x-project-id"); p && !p->empty()) requested.push_back("project:" + *p);
    std::string denied;
    if (!auth::SelectChannels(c.auth.principal, requested, &c.channels, &denied)) {
      metrics_.forbidden++;
      return c.Reply(http::JsonError(403, "forbidden", "channel not allowed: " + denied, {{"channel", denied}}));
    }
  }
  route.handler(c);
}

}  // namespace evstream::api
