#include "api/consumers_api.hpp"

#include "feed/event.hpp"
#include "feed/feed.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;
const std::string kClaimSql = std::string("SELECT ") + feed::kEventColumns +
                              " FROM evstream.consume($1, $2::int, $3::int, $4::int) e";
const char* const kAckSql = "SELECT evstream.ack($1, $2::bigint, $3::int)";
const char* const kFailSql = "SELECT evstream.fail($1, $2::bigint, $3, $4::int)";

bool HasRole(const json& claims, const std::string& role) {
  auto it = claims.find("roles");
  if (it == claims.end() || !it->is_array()) return false;
  for (const auto& r : *it)
    if (r.is_string() && r.get<std::string>() == role) return true;
  return false;
}

// An optional integer field within [min, max]; false when present and invalid.
bool OptInt(const json& body, const char* name, long long min, long long max, long long* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number_integer()) return false;
  long long v = it->get<long long>();
  if (v < min || v > max) return false;
  *out = v;
  return true;
}
}  // namespace

void ConsumersApi::Handle(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!AuthOrReply(d_, conn, req, extra, &a)) return;
  if (req.method != "POST") return ReplyTo(conn, http::JsonError(405, "method_not_allowed", "use POST"), extra);
  std::string rest = req.path.substr(std::string("/api/consumers/").size());
  auto slash = rest.find('/');
  std::string name = slash == std::string::npos ? "" : rest.substr(0, slash);
  std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (name.empty() || (action != "claim" && action != "ack" && action != "fail"))
    return ReplyTo(conn, http::JsonError(404, "not_found", "use /api/consumers/{name}/claim|ack|fail"), extra);
  if (!HasRole(a.claims, "worker")) {
    d_.metrics->forbidden++;
    return ReplyTo(conn, http::JsonError(403, "forbidden", "consumers need a token with roles: [\"worker\"]"), extra);
  }
  json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return ReplyTo(conn, http::JsonError(400, "bad_request", "the body must be a JSON object"), extra);
  long long member = 0;
  if (!OptInt(body, "member", 0, INT32_MAX, &member))
    return ReplyTo(conn, http::JsonError(400, "bad_request", "member must be an integer (0 or more)"), extra);
  std::weak_ptr<http::Connection> weak = conn;

  if (action == "claim") {
    long long max_count = 100, size = 1;
    if (!OptInt(body, "max_count", 1, 1000, &max_count) || !OptInt(body, "size", 1, 1024, &size))
      return ReplyTo(conn, http::JsonError(400, "bad_request", "max_count must be 1..1000, size 1..1024"), extra);
    auth::Principal principal = a.principal;
    d_.pool->Query(kClaimSql, {name, std::to_string(max_count), std::to_string(member), std::to_string(size)},
                   [weak, extra, principal](feed::QueryResult& r) {
                     if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
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
                     ReplyTo(weak, http::JsonRaw(200, out), extra);
                   });
    return;
  }
  auto pos = body.find("position");
  if (pos == body.end() || !pos->is_number_integer() || pos->get<long long>() < 1)
    return ReplyTo(conn, http::JsonError(400, "bad_request", "position must be a position (1 or more)"), extra);
  std::string position = std::to_string(pos->get<long long>());
  if (action == "ack") {
    d_.pool->Query(kAckSql, {name, position, std::to_string(member)}, [weak, extra, position](feed::QueryResult& r) {
      if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
      ReplyTo(weak, http::JsonRaw(200, "{\"acked\":" + position + "}"), extra);
    });
    return;
  }
  auto err = body.find("error");
  if (err == body.end() || !err->is_string() || err->get<std::string>().empty())
    return ReplyTo(conn, http::JsonError(400, "bad_request", "error must be a non-empty string"), extra);
  d_.pool->Query(kFailSql, {name, position, err->get<std::string>(), std::to_string(member)},
                 [weak, extra, position](feed::QueryResult& r) {
                   if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
                   ReplyTo(weak, http::JsonRaw(200, "{\"failed\":" + position + "}"), extra);
                 });
}

}  // namespace evstream::api
