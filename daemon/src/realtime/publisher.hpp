// POST /api/publish's way to the database: at most one evstream.publish round trip in flight per
// instance; everything that arrives meanwhile waits in the Coalescer and goes out in the next one
// (chunks of one stream merged, order kept). A first chunk waits up to coalesce_ms for company.
// One statement (evstream._publish_each) publishes a whole batch, each item through
// evstream.publish under the claims of its own token, so the database applies its channel and
// identity rules to every item, and a token stream costs one transaction per round trip instead
// of one per token.
#pragma once
#include <uv.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/pool.hpp"
#include "realtime/coalescer.hpp"

namespace evstream::realtime {

// The frame object evstream.publish builds (used here for its size):
// {"type","channel","entity","id","data","ephemeral":true,"ephemeralId","createdBy","timestamp"}.
std::string EphemeralPayload(const Publication& p, const std::string& ephemeral_id);
// An ephemeral event must be shorter than 8000 bytes (evstream.publish's limit).
constexpr size_t kMaxPayloadBytes = 7999;
// The JSON array evstream._publish_each takes: [{"claims","channel","type","data","entity","id"}].
std::string PublishItems(const std::vector<Publication>& batch, size_t from, size_t count);

class Publisher {
 public:
  // error == nullptr on success (ephemeral_id is the published event's id).
  using Done = std::function<void(const feed::QueryResult* error, const std::string& ephemeral_id, int chunks)>;
  Publisher(uv_loop_t* loop, feed::PgPool* pool, core::Metrics* metrics, int coalesce_ms);
  void Publish(Publication p, Done done);
  void Close();

 private:
  void Flush();
  void Send(std::vector<Publication> batch);
  void Finish(const Publication& p, const feed::QueryResult* error, const std::string& id);
  void Recover();

  uv_loop_t* loop_;
  feed::PgPool* pool_;
  core::Metrics* metrics_;
  int coalesce_ms_;
  Coalescer coalescer_;
  bool in_flight_ = false;
  bool closed_ = false;
  uint64_t next_ticket_ = 1;
  std::unordered_map<uint64_t, Done> waiting_;
  core::UvHandle<uv_timer_t> timer_;
};

}  // namespace evstream::realtime
