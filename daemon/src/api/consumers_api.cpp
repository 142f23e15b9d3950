#include "api/consumers_api.hpp"

#include "core/input.hpp"
#include "feed/event.hpp"
#include "feed/feed.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;
const std::string kClaimSql = std::string("SELECT ") + feed::kEventColumns +
                              " FROM evstream.consume($1, $2::int, $3::int, $4::int) e";
const char* const kAckSql = "SELECT evstream.ack($1, $2::bigint, $3::int)";
const char* const kFailSql = "SELECT evstream.fail($1, $2::bigint, $3, $4::int)";
}  // namespace

void ConsumersApi::Handle(Call& c) {
  const http::Request& req = c.req;
  const auth::AuthResult& a = c.auth;
  std::string rest = req.path.substr(std::string("/api/consumers/").size());
  auto slash = rest.find('/');
  std::string name = slash == std::string::npos ? "" : rest.substr(0, slash);
  std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (name.empty() || (action != "claim" && action != "ack" && action != "fail"))
    return c.Reply(http::JsonError(404, "not_found", "use /api/consumers/{name}/claim|ack|fail"));
  if (!HasRole(a.claims, "worker")) {
    d_.metrics->forbidden++;
    return c.Reply(http::JsonError(403, "forbidden", "consumers need a token with roles: [\"worker\"]"));
  }
  json body;
  if (!BodyOrReply(c, &body, /*allow_empty=*/true)) return;
  core::Fields f(body);
  int64_t member = f.Int("member", 0, INT32_MAX).value_or(0);
  if (!f.ok()) return c.Reply(FieldError(f));

  if (action == "claim") {
    int64_t max_count = f.Int("max_count", 1, 1000).value_or(100);
    int64_t size = f.Int("size", 1, 1024).value_or(1);
    if (!f.ok()) return c.Reply(FieldError(f));
    d_.pool->Query(kClaimSql, {name, std::to_string(max_count), std::to_string(member), std::to_string(size)},
                   ForRequest(c.conn, [reply = c.Later(), principal = a.principal](feed::QueryResult& r) {
                     if (!r.ok()) return reply(DbErrorResponse(r));
                     std::string events = "[";
                     long long next = -1;
                     bool first = true;
                     for (int i = 0; i < r.rows(); i++) {
                       feed::EventRow row = feed::RowAt(r, i);
                       next = row.position;
                       if (!auth::Allows(principal, row.channel)) continue;
                       if (!first) events += ",";
                       first = false;
                       events += feed::EventJson(row);
                     }
                     events += "]";
                     std::string out = "{\"events\":" + events + ",\"next\":" + (next < 0 ? "null" : std::to_string(next)) + "}";
                     reply(http::JsonRaw(200, out));
                   }), c.client_key);
    return;
  }
  auto pos = f.Int("position", 1, INT64_MAX, core::Need::Required);
  auto error = action == "fail" ? f.String("error", core::Need::Required) : std::nullopt;
  if (!f.ok()) return c.Reply(FieldError(f));
  std::string position = std::to_string(*pos);
  if (action == "ack") {
    d_.pool->Query(kAckSql, {name, position, std::to_string(member)},
                   ForRequest(c.conn, [reply = c.Later(), position](feed::QueryResult& r) {
                     if (!r.ok()) return reply(DbErrorResponse(r));
                     reply(http::JsonRaw(200, "{\"acked\":" + position + "}"));
                   }), c.client_key);
    return;
  }
  d_.pool->Query(kFailSql, {name, position, *error, std::to_string(member)},
                 ForRequest(c.conn, [reply = c.Later(), position](feed::QueryResult& r) {
                   if (!r.ok()) return reply(DbErrorResponse(r));
                   reply(http::JsonRaw(200, "{\"failed\":" + position + "}"));
                 }), c.client_key);
}

}  // namespace evstream::api
