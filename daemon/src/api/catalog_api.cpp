#include "api/catalog_api.hpp"

#include <cstdlib>
#include <map>

#include "core/input.hpp"
#include "core/log.hpp"

#include "feed/event.hpp"
#include "feed/feed.hpp"
#include "feed/pg.hpp"

namespace evstream::api {
namespace {
using nlohmann::json;
const std::string kEventSql = std::string("SELECT ") + feed::kEventColumns + " FROM evstream.events e WHERE e.id = $1::uuid";
const char* const kTypesSql =
    "SELECT event_type, schema::text, description, example::text,"
    " to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " FROM evstream.event_types ORDER BY event_type";
// Per (channel, type): the daemon keeps only the channels the caller may read. ($1: exact
// channels, or NULL when the caller holds patterns.)
const char* const kStatsSql =
    "SELECT channel, event_type, count(*), extract(epoch FROM min(created_at))::float8,"
    " extract(epoch FROM max(created_at))::float8 FROM evstream.events"
    " WHERE $1::text[] IS NULL OR channel = ANY($1::text[]) GROUP BY channel, event_type";

// 8-4-4-4-12 hex digits. A plain loop: no regex engine runs on what a client sent.
bool IsUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (i == 8 || i == 13 || i == 18 || i == 23 ? c != '-' : !hex) return false;
  }
  return true;
}

// A jsonb column as JSON (null when NULL or, defensively, when it does not parse).
json JsonOrNull(const feed::QueryResult& r, int row, int col) {
  auto text = r.TextOrNull(row, col);
  if (!text) return nullptr;
  json j = json::parse(*text, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}
}  // namespace

void CatalogApi::Event(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!AuthOrReply(d_, conn, req, extra, &a)) return;
  std::string id = req.path.substr(std::string("/api/events/").size());
  if (!IsUuid(id)) return ReplyTo(conn, http::JsonError(400, "bad_request", "eventId must be a UUID"), extra);
  std::weak_ptr<http::Connection> weak = conn;
  auth::Principal principal = a.principal;
  d_.pool->Query(kEventSql, {id}, ForRequest(weak, [weak, extra, principal](feed::QueryResult& r) {
    if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
    // Not readable with this token: the same answer as missing (no existence leak).
    if (r.rows() != 1) return ReplyTo(weak, http::JsonError(404, "not_found", "no such event"), extra);
    feed::EventRow row = feed::RowAt(r, 0);
    if (!auth::Allows(principal, row.channel))
      return ReplyTo(weak, http::JsonError(404, "not_found", "no such event"), extra);
    ReplyTo(weak, http::JsonRaw(200, feed::EventJson(row)), extra);
  }));
}

void CatalogApi::EventTypes(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!AuthOrReply(d_, conn, req, extra, &a)) return;
  std::weak_ptr<http::Connection> weak = conn;
  d_.pool->Query(kTypesSql, {}, ForRequest(weak, [weak, extra](feed::QueryResult& r) {
    if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
    json types = json::array();
    for (int i = 0; i < r.rows(); i++) {
      auto description = r.TextOrNull(i, 2);
      types.push_back({{"eventType", r.Text(i, 0)},
                       {"schema", JsonOrNull(r, i, 1)},
                       {"description", description ? json(*description) : json(nullptr)},
                       {"example", JsonOrNull(r, i, 3)},
                       {"registeredAt", r.Text(i, 4)},
                       {"updatedAt", r.Text(i, 5)}});
    }
    ReplyTo(weak, http::Json(200, {{"eventTypes", types}}), extra);
  }));
}

void CatalogApi::Stats(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra) {
  auth::AuthResult a;
  if (!AuthOrReply(d_, conn, req, extra, &a)) return;
  std::vector<std::string> requested = req.QueryAll("channel");
  auth::ChannelSet channels;
  std::string denied;
  if (!auth::SelectChannels(a.principal, requested, &channels, &denied)) {
    d_.metrics->forbidden++;
    return ReplyTo(conn, http::JsonError(403, "forbidden", "channel not allowed: " + denied, {{"channel", denied}}),
                   extra);
  }
  feed::Params params = {std::nullopt};
  if (!channels.HasPatterns()) params[0] = feed::TextArray(channels.exact);
  std::weak_ptr<http::Connection> weak = conn;
  d_.pool->Query(kStatsSql, std::move(params), ForRequest(weak, [weak, extra, channels](feed::QueryResult& r) {
    if (!r.ok()) return ReplyTo(weak, DbErrorResponse(r), extra);
    struct Row {
      long long events = 0;
      double first = 0, last = 0;
    };
    std::map<std::string, Row> by_type;
    for (int i = 0; i < r.rows(); i++) {
      if (!channels.Matches(r.Text(i, 0))) continue;
      Row& row = by_type[r.Text(i, 1)];
      long long n = r.Int64(i, 2);
      double first = r.Double(i, 3), last = r.Double(i, 4);
      if (row.events == 0 || first < row.first) row.first = first;
      if (row.events == 0 || last > row.last) row.last = last;
      row.events += n;
    }
    json types = json::array();
    long long total = 0;
    for (const auto& [type, row] : by_type) {
      total += row.events;
      types.push_back({{"eventType", type},
                       {"events", row.events},
                       {"firstAt", core::IsoTime(row.first)},
                       {"lastAt", core::IsoTime(row.last)}});
    }
    ReplyTo(weak, http::Json(200, {{"eventTypes", types}, {"total", total}, {"channels", channels.Names()}}), extra);
  }));
}

}  // namespace evstream::api
