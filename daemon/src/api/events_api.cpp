#include "api/events_api.hpp"

#include <nlohmann/json.hpp>

#include "core/input.hpp"
#include "core/json_out.hpp"
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
}  // namespace

void EventsApi::Post(Call& c) {
  const http::Request& req = c.req;
  const auth::AuthResult& a = c.auth;
  json body;
  if (!BodyOrReply(c, &body)) return;
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
  if (!f.ok()) return c.Reply(FieldError(f));
  if (p[0]->find('*') != std::string::npos || !auth::Allows(a.principal, *p[0])) {
    d_.metrics->forbidden++;
    return c.Reply(http::JsonError(403, "forbidden", "channel not allowed: " + *p[0], {{"channel", *p[0]}}));
  }
  p[4] = data ? core::DumpJson(*data) : "{}";
  p[5] = metadata ? core::DumpJson(*metadata) : "{}";
  if (const std::string* k = req.Header("idempotency-key"); k && !k->empty()) p[6] = *k;
  if (expected_version) p[7] = std::to_string(*expected_version);
  if (display) p[10] = core::DumpJson(*display);
  if (!a.principal.sub.empty()) p[11] = "user:" + a.principal.sub;

  d_.pool->Query(kPostSql, std::move(p), ForRequest(c.conn, [reply = c.Later()](feed::QueryResult& r) {
    if (!r.ok()) return reply(DbErrorResponse(r));
    if (r.rows() != 1) return reply(http::JsonError(500, "internal_error", "no event returned"));
    reply(http::JsonRaw(201, feed::EventJson(feed::RowAt(r, 0))));
  }), c.client_key);
}

void EventsApi::History(Call& c) {
  const http::Request& req = c.req;
  long long after = 0, limit = 100;
  if (auto s = req.QueryOne("after"); s && !ParseInt(*s, 0, INT64_MAX, &after))
    return c.Reply(http::JsonError(400, "bad_request", "after must be a position (0 or more)"));
  if (auto s = req.QueryOne("limit"); s && !ParseInt(*s, 1, 1000, &limit))
    return c.Reply(http::JsonError(400, "bad_request", "limit must be between 1 and 1000"));
  std::vector<std::string> topics = req.QueryAll("topic");
  feed::Params params = {std::to_string(after), std::to_string(limit), std::nullopt};
  if (!c.channels.HasPatterns()) params[2] = feed::TextArray(c.channels.exact);
  d_.pool->Query(kHistorySql, std::move(params),
                 ForRequest(c.conn, [reply = c.Later(), channels = c.channels, topics, after](feed::QueryResult& r) {
                   if (!r.ok()) return reply(DbErrorResponse(r));
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
                   reply(http::JsonRaw(200, body));
                 }), c.client_key);
}

void EventsApi::Stream(Call& c) {
  const http::Request& req = c.req;
  std::string rest = req.path.substr(std::string("/api/streams/").size());
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= rest.size())
    return c.Reply(http::JsonError(400, "bad_request", "use /api/streams/{aggregate_type}/{aggregate_id}"));
  std::string type = rest.substr(0, slash), id = rest.substr(slash + 1);
  long long after_version = 0;
  if (auto s = req.QueryOne("after_version"); s && !ParseInt(*s, 0, INT32_MAX, &after_version))
    return c.Reply(http::JsonError(400, "bad_request", "after_version must be 0 or more"));
  d_.pool->Query(kStreamSql, {type, id, std::to_string(after_version)},
                 ForRequest(c.conn, [reply = c.Later(), principal = c.auth.principal, type, id](feed::QueryResult& r) {
                   if (!r.ok()) return reply(DbErrorResponse(r));
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
                     return reply(http::JsonError(403, "forbidden", "stream not readable with this token"));
                   nlohmann::ordered_json head = {{"entity", type}, {"id", id}, {"version", version}};
                   std::string body = core::DumpJson(head);
                   body.pop_back();
                   body += ",\"events\":" + events + "}";
                   reply(http::JsonRaw(200, body));
                 }), c.client_key);
}

}  // namespace evstream::api
