#include "api/realtime_api.hpp"

#include <algorithm>

#include "auth/request_auth.hpp"
#include "feed/event.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;

void Reply(const std::weak_ptr<http::Connection>& weak, http::Response r, const http::Headers& extra) {
  auto conn = weak.lock();
  if (!conn || conn->closing()) return;
  for (const auto& h : extra) r.headers.push_back(h);
  conn->Respond(r);
}

bool Auth(const EventsDeps& d, const http::ConnectionPtr& conn, const http::Request& req,
          const http::Headers& extra, auth::AuthResult* out) {
  *out = auth::Authenticate(*d.verifier, req);
  if (out->ok) return true;
  d.metrics->auth_failures++;
  Reply(conn, http::JsonError(401, "unauthorized", out->error), extra);
  return false;
}

// The token's grants as claims for evstream.publish ({"sub", "channels"}): the database checks
// the channel and the identity again with the same rule.
std::string ClaimsJson(const auth::Principal& pr) {
  json channels = json::array();
  for (const auto& e : pr.exact) channels.push_back(e);
  for (const auto& pre : pr.prefixes) channels.push_back(pre + "*");
  json c = {{"channels", channels}};
  if (!pr.sub.empty()) c["sub"] = pr.sub;
  return c.dump(-1, ' ', false, json::error_handler_t::replace);
}

// An optional string field; false when present with another type.
bool OptString(const json& body, const char* name, std::string* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}
}  // namespace

void RealtimeApi::Publish(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!Auth(d_, conn, req, extra, &a)) return;
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    Reply(conn, http::JsonError(400, "bad_request", "the body must be a JSON object"), extra);
    return;
  }
  realtime::Publication p;
  if (!OptString(body, "channel", &p.channel) || p.channel.empty())
    return Reply(conn, http::JsonError(400, "bad_request", "missing or invalid field: channel"), extra);
  if (!OptString(body, "type", &p.type) || p.type.empty())
    return Reply(conn, http::JsonError(400, "bad_request", "missing or invalid field: type"), extra);
  if (feed::IsReservedEphemeralType(p.type))
    return Reply(conn, http::JsonError(400, "bad_request", "type is reserved: " + p.type), extra);
  if (!OptString(body, "entity", &p.entity) || !OptString(body, "id", &p.id))
    return Reply(conn, http::JsonError(400, "bad_request", "entity and id must be strings"), extra);
  if (p.channel.find('*') != std::string::npos || !auth::Allows(a.principal, p.channel)) {
    d_.metrics->forbidden++;
    return Reply(conn, http::JsonError(403, "forbidden", "channel not allowed: " + p.channel, {{"channel", p.channel}}),
                 extra);
  }
  if (auto it = body.find("data"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Reply(conn, http::JsonError(400, "bad_request", "data must be a JSON object"), extra);
    p.data = *it;
  }
  if (p.type == "typing") {
    // The server says who is typing (never the client), and isTyping is a boolean.
    auto t = p.data.find("isTyping");
    if (t == p.data.end() || !t->is_boolean())
      return Reply(conn, http::JsonError(400, "bad_request", "typing events need data.isTyping (a boolean)"), extra);
    if (a.principal.sub.empty())
      return Reply(conn, http::JsonError(400, "bad_request", "typing events need a token with a sub"), extra);
    p.data["userId"] = a.principal.sub;
  }
  p.created_by = a.principal.sub.empty() ? "system" : "user:" + a.principal.sub;
  p.claims = ClaimsJson(a.principal);
  // The exact payload (the id and timestamp have fixed lengths).
  size_t bytes = realtime::EphemeralPayload(p, std::string(36, '0')).size();
  if (bytes > realtime::kMaxPayloadBytes)
    return Reply(conn, http::JsonError(413, "payload_too_large",
                                       "ephemeral event is too large: " + std::to_string(bytes) + " bytes (limit " +
                                           std::to_string(realtime::kMaxPayloadBytes) +
                                           "); store it with POST /api/events instead",
                                       {{"limit", realtime::kMaxPayloadBytes}, {"bytes", bytes}}),
                 extra);
  std::weak_ptr<http::Connection> weak = conn;
  std::string channel = p.channel, type = p.type;
  publisher_->Publish(std::move(p), [weak, extra, channel, type](const feed::QueryResult* err, const std::string& id,
                                                                 int chunks) {
    if (err) {
      int status = StatusForSqlState(err->sqlstate);
      std::string code = ErrorCodeForSqlState(err->sqlstate);
      if (err->sqlstate == "22023" && err->error.find("too large") != std::string::npos) {
        status = 413;
        code = "payload_too_large";
      } else if (err->sqlstate == "42501") {
        status = 403;
        code = "forbidden";
      }
      std::string message = status == 503 ? "database unavailable" : status >= 500 ? "internal error" : err->error;
      return Reply(weak, http::JsonError(status, code, message), extra);
    }
    json out = {{"published", true}, {"ephemeralId", id}, {"channel", channel}, {"type", type}, {"coalesced", chunks}};
    Reply(weak, http::Json(202, out), extra);
  });
}

void RealtimeApi::PresenceList(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!Auth(d_, conn, req, extra, &a)) return;
  auto ch = req.QueryOne("channel");
  if (!ch || ch->empty() || ch->find('*') != std::string::npos)
    return Reply(conn, http::JsonError(400, "bad_request", "channel=<name> is required (no patterns)"), extra);
  if (!auth::Allows(a.principal, *ch)) {
    d_.metrics->forbidden++;
    return Reply(conn, http::JsonError(403, "forbidden", "channel not allowed: " + *ch, {{"channel", *ch}}), extra);
  }
  json members = json::array();
  for (const auto& u : presence_->Members(*ch)) members.push_back({{"userId", u}});
  Reply(conn, http::Json(200, {{"channel", *ch}, {"members", members}, {"count", members.size()}}), extra);
}

}  // namespace evstream::api
