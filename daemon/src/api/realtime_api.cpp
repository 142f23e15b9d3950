#include "api/realtime_api.hpp"

#include <algorithm>

#include "auth/request_auth.hpp"
#include "core/input.hpp"
#include "core/json_out.hpp"
#include "feed/event.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;

// The token's grants as claims for evstream.publish ({"sub", "channels"}): the database checks
// the channel and the identity again with the same rule.
std::string ClaimsJson(const auth::Principal& pr) {
  json channels = json::array();
  for (const auto& e : pr.exact) channels.push_back(e);
  for (const auto& pre : pr.prefixes) channels.push_back(pre + "*");
  json c = {{"channels", channels}};
  if (!pr.sub.empty()) c["sub"] = pr.sub;
  return core::DumpJson(c);
}
}  // namespace

void RealtimeApi::Publish(Call& c) {
  const auth::AuthResult& a = c.auth;
  json body;
  if (!BodyOrReply(c, &body)) return;
  // Typed at the edge: the envelope, then the parts of data the daemon itself reads (chunks for
  // the coalescer, typing for presence). Nothing below reads the JSON with value() or get<>.
  realtime::Publication p;
  core::Fields f(body);
  auto in_channel = f.String("channel", core::Need::Required);
  auto in_type = f.String("type", core::Need::Required);
  auto in_entity = f.String("entity");
  auto in_id = f.String("id");
  const json* in_data = f.Object("data");
  if (!f.ok()) return c.Reply(FieldError(f));
  p.channel = *in_channel;
  p.type = *in_type;
  p.entity = in_entity.value_or("");
  p.id = in_id.value_or("");
  if (in_data) p.data = *in_data;
  if (feed::IsReservedEphemeralType(p.type))
    return c.Reply(http::JsonError(400, "bad_request", "type is reserved: " + p.type));
  if (p.channel.find('*') != std::string::npos || !auth::Allows(a.principal, p.channel)) {
    d_.metrics->forbidden++;
    return c.Reply(http::JsonError(403, "forbidden", "channel not allowed: " + p.channel, {{"channel", p.channel}}));
  }
  core::Fields d(p.data, "data.");
  if (d.Value("streamId")) {
    // A chunk of a token stream: {"streamId": string, "text"?: string, "done"?: boolean}.
    d.String("streamId");
    d.String("text");
    d.Bool("done");
  }
  if (p.type == "typing") d.Bool("isTyping", core::Need::Required);  // the server says who
  if (!d.ok()) return c.Reply(FieldError(d));
  if (p.type == "typing") {
    if (a.principal.sub.empty())
      return c.Reply(http::JsonError(400, "bad_request", "typing events need a token with a sub"));
    p.data["userId"] = a.principal.sub;
  }
  p.created_by = a.principal.sub.empty() ? "system" : "user:" + a.principal.sub;
  p.claims = ClaimsJson(a.principal);
  // The exact payload (the id and timestamp have fixed lengths).
  size_t bytes = realtime::EphemeralPayload(p, std::string(36, '0')).size();
  if (bytes > realtime::kMaxPayloadBytes)
    return c.Reply(http::JsonError(413, "payload_too_large",
                                       "ephemeral event is too large: " + std::to_string(bytes) + " bytes (limit " +
                                           std::to_string(realtime::kMaxPayloadBytes) +
                                           "); store it with POST /api/events instead",
                                       {{"limit", realtime::kMaxPayloadBytes}, {"bytes", bytes}}));
  std::string channel = p.channel, type = p.type;
  publisher_->Publish(std::move(p), ForRequest(c.conn, [reply = c.Later(), channel, type](const feed::QueryResult* err,
                                                                                         const std::string& id,
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
      return reply(http::JsonError(status, code, message));
    }
    json out = {{"published", true}, {"ephemeralId", id}, {"channel", channel}, {"type", type}, {"coalesced", chunks}};
    reply(http::Json(202, out));
  }));
}

void RealtimeApi::PresenceList(Call& c) {
  const http::Request& req = c.req;
  const auth::AuthResult& a = c.auth;
  auto ch = req.QueryOne("channel");
  if (!ch || ch->empty() || ch->find('*') != std::string::npos)
    return c.Reply(http::JsonError(400, "bad_request", "channel=<name> is required (no patterns)"));
  if (!auth::Allows(a.principal, *ch)) {
    d_.metrics->forbidden++;
    return c.Reply(http::JsonError(403, "forbidden", "channel not allowed: " + *ch, {{"channel", *ch}}));
  }
  presence_->MembersThen(*ch, ForRequest(c.conn, [reply = c.Later(), channel = *ch](std::vector<std::string> users) {
    json members = json::array();
    for (const auto& u : users) members.push_back({{"userId", u}});
    reply(http::Json(200, {{"channel", channel}, {"members", members}, {"count", members.size()}}));
  }));
}

}  // namespace evstream::api
