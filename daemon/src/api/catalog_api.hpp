// Read-only HTTP API beside the log (issue 7), same tokens; results filtered by the claims rule:
//   GET /api/events/{eventId}   one stored event (404 when missing or not readable)
//   GET /api/event-types        the catalog: schema, description, example per event type
//   GET /api/stats              per event type: count, first and last time (allowed channels only)
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "api/common.hpp"
#include "core/mailbox.hpp"

namespace evstream::api {

class CatalogApi {
 public:
  explicit CatalogApi(EventsDeps deps) : d_(deps) {}
  void Event(Call& c);
  void EventTypes(Call& c);
  void Stats(Call& c);
  // --threads: the stats cache of `owner` (which lives on `home`'s loop) serves this one too.
  void ShareStatsWith(CatalogApi* owner, core::Mailbox* home) {
    stats_owner_ = owner;
    stats_home_ = home;
  }

 private:
  using Answer = std::function<void(const http::Response&)>;  // runs the reply on the request's loop
  void StatsHere(const std::string& key, const auth::ChannelSet& channels, const std::string& client_key,
                 const Answer& answer);
  struct StatsEntry {
    std::chrono::steady_clock::time_point fresh_until{};
    std::string body;              // the last answer ("" until the first one)
    bool loading = false;          // a query for this channel set is running
    std::vector<Answer> waiting;  // answered when it completes
  };
  static constexpr size_t kMaxStatsEntries = 1024;
  EventsDeps d_;
  std::map<std::string, StatsEntry> stats_cache_;  // by sorted channel names
  CatalogApi* stats_owner_ = nullptr;
  core::Mailbox* stats_home_ = nullptr;
};

}  // namespace evstream::api
