// Read-only HTTP API beside the log (issue 7), same tokens; results filtered by the claims rule:
//   GET /api/events/{eventId}   one stored event (404 when missing or not readable)
//   GET /api/event-types        the catalog: schema, description, example per event type
//   GET /api/stats              per event type: count, first and last time (allowed channels only)
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "api/common.hpp"

namespace evstream::api {

class CatalogApi {
 public:
  explicit CatalogApi(EventsDeps deps) : d_(deps) {}
  void Event(Call& c);
  void EventTypes(Call& c);
  void Stats(Call& c);

 private:
  struct StatsEntry {
    std::chrono::steady_clock::time_point fresh_until{};
    std::string body;              // the last answer ("" until the first one)
    bool loading = false;          // a query for this channel set is running
    std::vector<Replier> waiting;  // answered when it completes
  };
  static constexpr size_t kMaxStatsEntries = 1024;
  EventsDeps d_;
  std::map<std::string, StatsEntry> stats_cache_;  // by sorted channel names
};

}  // namespace evstream::api
