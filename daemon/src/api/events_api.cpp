#include "api/events_api.hpp"

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "auth/request_auth.hpp"
#include "core/input.hpp"
#include "core/json_out.hpp"
#include "core/log.hpp"
#include "feed/event.hpp"
#include "feed/feed.hpp"
#include "feed/pg.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;

const std::string kPostSql = std::string("SELECT ") + feed::kEventColumns +
                             " FROM evstream.post_event($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8::int,"
                             " $9::uuid, $10::uuid, $11::jsonb, $12) e";
const std::string kHistorySql = std::string("SELECT ") + feed::kEventColumns +
                                " FROM evstream.read_after($1::bigint, $2::int, $3::text[]) e";
const std::string kStreamSql = std::string("SELECT ") + feed::kEventColumns +
                               " FROM evstream.stream($1, $2, $3::int) e";

// Sends the response unless the client has gone (the connection may close during a query).
void Reply(const std::weak_ptr<http::Connection>& weak, http::Response r, const http::Headers& extra) {
  auto conn = weak.lock();
  if (!conn || conn->closing()) return;
  for (const auto& h : extra) r.headers.push_back(h);
  conn->Respond(r);
}

http::Response DbError(const feed::QueryResult& r) {
  int status = StatusForSqlState(r.sqlstate);
  if (status >= 500 && !r.sqlstate.empty())
    core::LogError("database error", {{"error", r.error}, {"sqlstate", r.sqlstate}});
  std::string message = status == 503 ? "database unavailable" : status >= 500 ? "internal error" : r.error;
  json extra = json::object();
  if (!r.sqlstate.empty() && status < 500) {
    extra["sqlstate"] = r.sqlstate;
    if (!r.detail.empty()) extra["detail"] = r.detail;
    if (!r.hint.empty()) extra["hint"] = r.hint;
  }
  return http::JsonError(status, ErrorCodeForSqlState(r.sqlstate), message, extra);
}

bool ParseInt(const std::string& s, long long min, long long max, long long* out) {
  int64_t v;
  if (!core::ParseInt64(s, &v) || v < min || v > max) return false;
  *out = v;
  return true;
}

// Authenticates; on failure answers 401 itself and returns false.
bool Auth(const EventsDeps& d, const http::ConnectionPtr& conn, const http::Request& req,
          const http::Headers& extra, auth::AuthResult* out) {
  *out = auth::Authenticate(*d.verifier, req);
  if (out->ok) return true;
  d.metrics->auth_failures++;
  Reply(conn, http::JsonError(401, "unauthorized", out->error), extra);
  return false;
}

}  // namespace

bool BodyOrReply(const http::ConnectionPtr& conn, const http::Request& req, const http::Headers& extra,
                 json* out, bool allow_empty) {
  if (allow_empty && req.body.empty()) {
    *out = json::object();
    return true;
  }
  core::JsonBody body = core::ParseJsonObject(req.body);
  if (!body.ok()) {
    json more = json::object();
    if (body.offset >= 0) more["offset"] = body.offset;
    Reply(conn, http::JsonError(400, "bad_request", body.error, more), extra);
    return false;
  }
  *out = std::move(body.value);
  return true;
}

http::Response FieldError(const core::Fields& f) {
  return http::JsonError(400, "bad_request", f.error(), {{"field", f.field()}});
}

void ReplyTo(const std::weak_ptr<http::Connection>& weak, http::Response r, const http::Headers& extra) {
  Reply(weak, std::move(r), extra);
}
http::Response DbErrorResponse(const feed::QueryResult& r) { return DbError(r); }
bool AuthOrReply(const EventsDeps& d, const http::ConnectionPtr& conn, const http::Request& req,
                 const http::Headers& extra, auth::AuthResult* out) {
  return Auth(d, conn, req, extra, out);
}

int StatusForSqlState(const std::string& s) {
  if (s.empty()) return 503;
  if (s == "EV001" || s == "EV002") return 409;
  if (s == "EV003" || s == "EV004") return 422;
  if (s == "EV005") return 403;
  if (s == "EV006") return 410;
  if (s.rfind("22", 0) == 0 || s == "23514" || s == "23502") return 400;
  return 500;
}

std::string ErrorCodeForSqlState(const std::string& s) {
  if (s.empty()) return "database_unavailable";
  if (s == "EV001") return "version_conflict";
  if (s == "EV002") return "idempotency_conflict";
  if (s == "EV003") return "invalid_data";
  if (s == "EV004") return "illegal_transition";
  if (s == "EV005") return "forbidden";
  if (s == "EV006") return "unknown_position";
  if (s.rfind("22", 0) == 0 || s == "23514" || s == "23502") return "bad_request";
  return "internal_error";
}

void EventsApi::Post(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!Auth(d_, conn, req, extra, &a)) return;
  json body;
  if (!BodyOrReply(conn, req, extra, &body)) return;
  // Every field typed at the edge; nothing below reads the JSON again.
  core::Fields f(body);
  feed::Params p(12);
  p[0] = f.String("channel", core::Need::Required);
  p[1] = f.String("aggregate_type", core::Need::Required);
  p[2] = f.String("aggregate_id", core::Need::Required);
  p[3] = f.String("event_type", core::Need::Required);
  const json* data = f.Object("data");
  const json* metadata = f.Object("metadata");
  auto expected_version = f.Int("expected_version", INT32_MIN, INT32_MAX);
  p[8] = f.String("correlation_id");
  p[9] = f.String("causation_id");
  const json* display = f.Value("display");
  if (!f.ok()) return Reply(conn, FieldError(f), extra);
  if (p[0]->find('*') != std::string::npos || !auth::Allows(a.principal, *p[0])) {
    d_.metrics->forbidden++;
    Reply(conn, http::JsonError(403, "forbidden", "channel not allowed: " + *p[0], {{"channel", *p[0]}}), extra);
    return;
  }
  p[4] = data ? core::DumpJson(*data) : "{}";
  p[5] = metadata ? core::DumpJson(*metadata) : "{}";
  if (const std::string* k = req.Header("idempotency-key"); k && !k->empty()) p[6] = *k;
  if (expected_version) p[7] = std::to_string(*expected_version);
  if (display) p[10] = core::DumpJson(*display);
  if (!a.principal.sub.empty()) p[11] = "user:" + a.principal.sub;

  std::weak_ptr<http::Connection> weak = conn;
  d_.pool->Query(kPostSql, std::move(p), ForRequest(weak, [weak, extra](feed::QueryResult& r) {
    if (!r.ok()) return Reply(weak, DbError(r), extra);
    if (r.rows() != 1) return Reply(weak, http::JsonError(500, "internal_error", "no event returned"), extra);
    Reply(weak, http::JsonRaw(201, feed::EventJson(feed::RowAt(r, 0))), extra);
  }));
}

void EventsApi::History(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!Auth(d_, conn, req, extra, &a)) return;
  std::vector<std::string> requested = req.QueryAll("channel");
  if (const std::string* p = req.Header("x-project-id"); p && !p->empty()) requested.push_back("project:" + *p);
  auth::ChannelSet channels;
  std::string denied;
  if (!auth::SelectChannels(a.principal, requested, &channels, &denied)) {
    d_.metrics->forbidden++;
    Reply(conn, http::JsonError(403, "forbidden", "channel not allowed: " + denied, {{"channel", denied}}), extra);
    return;
  }
  long long after = 0, limit = 100;
  if (auto s = req.QueryOne("after"); s && !ParseInt(*s, 0, INT64_MAX, &after)) {
    Reply(conn, http::JsonError(400, "bad_request", "after must be a position (0 or more)"), extra);
    return;
  }
  if (auto s = req.QueryOne("limit"); s && !ParseInt(*s, 1, 1000, &limit)) {
    Reply(conn, http::JsonError(400, "bad_request", "limit must be between 1 and 1000"), extra);
    return;
  }
  std::vector<std::string> topics = req.QueryAll("topic");
  feed::Params params = {std::to_string(after), std::to_string(limit), std::nullopt};
  if (!channels.HasPatterns()) params[2] = feed::TextArray(channels.exact);
  std::weak_ptr<http::Connection> weak = conn;
  d_.pool->Query(kHistorySql, std::move(params),
                 ForRequest(weak, [weak, extra, channels, topics, after](feed::QueryResult& r) {
                   if (!r.ok()) return Reply(weak, DbError(r), extra);
                   std::string events = "[";
                   long long next = after;
                   bool first = true;
                   for (int i = 0; i < r.rows(); i++) {
                     feed::EventRow row = feed::RowAt(r, i);
                     next = row.position;
                     if (!channels.Matches(row.channel) ||
                         !auth::AnyTopicMatches(topics, row.aggregate_type, row.aggregate_id))
                       continue;
                     if (!first) events += ",";
                     first = false;
                     events += feed::EventJson(row);
                   }
                   events += "]";
                   std::string body = "{\"events\":" + events + ",\"next\":" + std::to_string(next) +
                                      ",\"channels\":" + core::DumpJson(json(channels.Names())) + "}";
                   Reply(weak, http::JsonRaw(200, body), extra);
                 }));
}

void EventsApi::Stream(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!Auth(d_, conn, req, extra, &a)) return;
  std::string rest = req.path.substr(std::string("/api/streams/").size());
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= rest.size()) {
    Reply(conn, http::JsonError(400, "bad_request", "use /api/streams/{aggregate_type}/{aggregate_id}"), extra);
    return;
  }
  std::string type = rest.substr(0, slash), id = rest.substr(slash + 1);
  long long after_version = 0;
  if (auto s = req.QueryOne("after_version"); s && !ParseInt(*s, 0, INT32_MAX, &after_version)) {
    Reply(conn, http::JsonError(400, "bad_request", "after_version must be 0 or more"), extra);
    return;
  }
  std::weak_ptr<http::Connection> weak = conn;
  auth::Principal principal = a.principal;
  d_.pool->Query(kStreamSql, {type, id, std::to_string(after_version)},
                 ForRequest(weak, [weak, extra, principal, type, id](feed::QueryResult& r) {
                   if (!r.ok()) return Reply(weak, DbError(r), extra);
                   std::string events = "[";
                   int shown = 0, version = 0;
                   for (int i = 0; i < r.rows(); i++) {
                     feed::EventRow row = feed::RowAt(r, i);
                     if (!auth::Allows(principal, row.channel)) continue;
                     if (shown++) events += ",";
                     events += feed::EventJson(row);
                     version = row.version;
                   }
                   events += "]";
                   if (r.rows() > 0 && shown == 0)
                     return Reply(weak, http::JsonError(403, "forbidden", "stream not readable with this token"),
                                  extra);
                   nlohmann::ordered_json head = {{"entity", type}, {"id", id}, {"version", version}};
                   std::string body = core::DumpJson(head);
                   body.pop_back();
                   body += ",\"events\":" + events + "}";
                   Reply(weak, http::JsonRaw(200, body), extra);
                 }));
}

}  // namespace evstream::api
