#include "api/front.hpp"

#include <cctype>

#include "api/openapi.hpp"
#include "core/log.hpp"
#include "http/cors.hpp"

namespace evstream::api {
namespace {
http::ServerOptions ServerFrom(const core::Config& c, std::shared_ptr<http::SharedLimits> limits, int loop) {
  http::ServerOptions o;
  o.shared = std::move(limits);
  o.first_id = (static_cast<uint64_t>(loop) << 40) + 1;
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
}  // namespace

Front::Front(uv_loop_t* loop, int index, const core::Config& cfg, const Shared* shared, core::Metrics* metrics)
    : index_(index), cfg_(cfg), shared_(shared), metrics_(metrics),
      streams_(sse::StreamDeps{loop, &cfg_, metrics_, &hub_, &view_, shared->pool, shared->verifier, shared->presence}),
      events_api_(EventsDeps{&cfg_, metrics_, shared->pool, shared->verifier}),
      realtime_api_(EventsDeps{&cfg_, metrics_, shared->pool, shared->verifier}, shared->publisher, shared->presence),
      catalog_api_(EventsDeps{&cfg_, metrics_, shared->pool, shared->verifier}),
      consumers_api_(EventsDeps{&cfg_, metrics_, shared->pool, shared->verifier}),
      server_(loop, ServerFrom(cfg, shared->limits, index), [this](const http::ConnectionPtr& c, http::Request& r) { Route(c, r); },
              metrics_) {
  if (shared->tls) server_.SetTls(shared->tls);
  if (index != 0) catalog_api_.ShareStatsWith(shared->stats_owner, shared->home);
  BuildRoutes();
}

int Front::Listen(http::Server::Share share) {
  // Loop 0 binds first (port 0: the kernel picks one); the others bind the port it got.
  return server_.Listen(cfg_.listen_host, cfg_.listen_port, share);
}

void Front::Start() { streams_.Start(); }

void Front::Close() {
  server_.Close();
  streams_.Close();
}

http::Response Front::Health() const {
  nlohmann::json j = {{"status", "ok"}, {"position", view_.Cursor().position}};
  if (!view_.Connected()) {
    j["status"] = "unavailable";
    j["reason"] = "database disconnected";
    return http::Json(503, j);
  }
  if (!view_.Positioned()) {
    j["status"] = "unavailable";
    j["reason"] = "feed starting";
    return http::Json(503, j);
  }
  // Still healthy, but say who holds delivery back once it passes a second.
  // (the feed's figures: loop 0's metrics)
  const core::Metrics& f = *shared_->all_metrics.front();
  if (f.held_back_seconds >= 1.0) {
    auto [database, state] = f.HeldBackText();
    j["held_back"] = {{"seconds", f.held_back_seconds.get()}, {"events", f.held_back_events.get()},
                      {"pid", f.held_back_pid.get()}, {"database", database},
                      {"state", state}, {"open_seconds", f.held_back_open_seconds.get()}};
  }
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

void Front::AddRoute(const std::string& path, bool prefix, std::vector<std::string> methods, RouteOptions o,
                   std::function<void(Call&)> handler) {
  routes_.Add(path, prefix, std::move(methods), RouteEntry{o, std::move(handler)});
}

// The one table of everything the daemon answers (static files are the fallback for GET).
void Front::BuildRoutes() {
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
    r.body = core::Metrics::Render(shared_->all_metrics);
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

void Front::Route(const http::ConnectionPtr& conn, http::Request& req) {
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
      return c.Reply(shared_->static_files->Serve(req));
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
    c.auth = auth::Authenticate(*shared_->verifier, req, policy, cfg_.cors_origins);
    if (!c.auth.ok) {
      if (c.auth.status == 403) {
        metrics_->forbidden++;
        return c.Reply(http::JsonError(403, "csrf", c.auth.error));
      }
      metrics_->auth_failures++;
      return c.Reply(http::JsonError(401, "unauthorized", c.auth.error));
    }
    // Fair limits: this connection now counts against the token's sub.
    if (const std::string& sub = c.auth.principal.sub; !sub.empty()) {
      c.client_key = "sub:" + sub;
      if (!conn->ClaimSub(sub)) {
        metrics_->limited++;
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
      metrics_->forbidden++;
      return c.Reply(http::JsonError(403, "forbidden", "channel not allowed: " + denied, {{"channel", denied}}));
    }
  }
  route.handler(c);
}

}  // namespace evstream::api
