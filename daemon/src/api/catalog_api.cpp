#include "api/catalog_api.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "core/guard.hpp"
#include "core/input.hpp"
#include "core/json_out.hpp"
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
// Per (channel, type), from the summary evstream.channel_stats() keeps (it folds the events
// appended since the last fold first): the cost follows the number of groups, not the log. The
// daemon keeps only the channels the caller may read. ($1: exact channels, or NULL when the
// caller holds patterns.)
const char* const kStatsSql =
    "SELECT s.channel, s.event_type, s.events, extract(epoch FROM s.first_at)::float8,"
    " extract(epoch FROM s.last_at)::float8 FROM evstream.channel_stats($1::text[]) s";

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

void CatalogApi::Event(Call& c) {
  std::string id = c.req.path.substr(std::string("/api/events/").size());
  if (!IsUuid(id)) return c.Reply(http::JsonError(400, "bad_request", "eventId must be a UUID"));
  d_.pool->Query(kEventSql, {id}, ForRequest(c.conn, [reply = c.Later(), principal = c.auth.principal](feed::QueryResult& r) {
    if (!r.ok()) return reply(DbErrorResponse(r));
    // Not readable with this token: the same answer as missing (no existence leak).
    if (r.rows() != 1) return reply(http::JsonError(404, "not_found", "no such event"));
    feed::EventRow row = feed::RowAt(r, 0);
    if (!auth::Allows(principal, row.channel)) return reply(http::JsonError(404, "not_found", "no such event"));
    reply(http::JsonRaw(200, feed::EventJson(row)));
  }), c.client_key);
}

void CatalogApi::EventTypes(Call& c) {
  d_.pool->Query(kTypesSql, {}, ForRequest(c.conn, [reply = c.Later()](feed::QueryResult& r) {
    if (!r.ok()) return reply(DbErrorResponse(r));
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
    reply(http::Json(200, {{"eventTypes", types}}));
  }), c.client_key);
}

// GET /api/stats reads the stats summary (its cost does not grow with the log). Answers are
// still cached per channel set for --stats-cache-ms, and while one query per channel set runs,
// later callers wait for its answer instead of starting their own, so the number of callers does
// not multiply the database's work. The cache is bounded (kMaxStatsEntries).
// With --threads the cache is the daemon's: every loop asks the owner's (on its loop), and the
// answer comes back to the loop of the request.
void CatalogApi::Stats(Call& c) {
  Answer answer = [reply = c.Later(), back = core::Mailbox::Current()](const http::Response& r) {
    core::RunOn(back, [reply, r] { reply(r); });
  };
  CatalogApi* owner = stats_owner_ ? stats_owner_ : this;
  core::RunOn(stats_home_, [owner, key = c.channels.Key(), channels = c.channels, client = c.client_key, answer] {
    owner->StatsHere(key, channels, client, answer);
  });
}

void CatalogApi::StatsHere(const std::string& key, const auth::ChannelSet& channels, const std::string& client_key,
                           const Answer& answer) {
  auto now = std::chrono::steady_clock::now();
  auto it = stats_cache_.find(key);
  if (it != stats_cache_.end()) {
    StatsEntry& e = it->second;
    if (!e.body.empty() && now < e.fresh_until) return answer(http::JsonRaw(200, e.body));
    if (e.loading) {
      e.waiting.push_back(answer);
      return;
    }
  }
  if (stats_cache_.size() >= kMaxStatsEntries) {
    for (auto i = stats_cache_.begin(); i != stats_cache_.end();)
      i = (!i->second.loading && now >= i->second.fresh_until) ? stats_cache_.erase(i) : std::next(i);
  }
  StatsEntry* entry = nullptr;
  if (stats_cache_.size() < kMaxStatsEntries || stats_cache_.count(key)) {
    entry = &stats_cache_[key];
    entry->loading = true;
    entry->waiting.push_back(answer);
  }
  feed::Params params = {std::nullopt};
  if (!channels.HasPatterns()) params[0] = feed::TextArray(channels.exact);
  int ttl_ms = d_.config->stats_cache_ms;
  d_.pool->Query(kStatsSql, std::move(params),
                 [this, key, cached = entry != nullptr, answer, channels, ttl_ms](feed::QueryResult& r) {
    std::vector<Answer> waiting;
    StatsEntry* e = nullptr;
    if (cached) {
      auto it = stats_cache_.find(key);
      if (it != stats_cache_.end()) {
        e = &it->second;
        waiting = std::move(e->waiting);
        e->waiting.clear();
        e->loading = false;
      }
    } else {
      waiting.push_back(answer);
    }
    // Everyone waiting gets an answer, even when reading the rows throws (the boundary logs it).
    core::Guard("stats result", [&] {
      if (!r.ok()) {
        http::Response err = DbErrorResponse(r);
        for (const auto& w : waiting) w(err);
        return;
      }
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
      std::string body = core::DumpJson(json({{"eventTypes", types}, {"total", total}, {"channels", channels.Names()}}));
      if (e) {
        e->body = body;
        e->fresh_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ttl_ms);
      }
      for (const auto& w : waiting) w(http::JsonRaw(200, body));
    }, [&] {
      for (const auto& w : waiting) w(http::JsonError(500, "internal_error", "internal error"));
    });
  }, client_key);
}

}  // namespace evstream::api
