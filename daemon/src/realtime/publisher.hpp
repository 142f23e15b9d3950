// POST /api/publish's way to the database: at most one evstream.publish round trip in flight per
// instance; everything that arrives meanwhile waits in the Coalescer and goes out in the next one
// (chunks of one stream merged, order kept). A first chunk waits up to coalesce_ms for company.
// The daemon sends the NOTIFYs itself (pg_notify, the payload evstream.publish would build), so
// it needs no function from the extension. One statement publishes a whole batch, so a token stream costs one NOTIFY transaction per
// round trip instead of one per token.
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

// The NOTIFY evstream_ephemeral payload, the same object evstream.publish builds in SQL:
// {"type","channel","entity","id","data","ephemeral":true,"ephemeralId","createdBy","timestamp"}.
std::string EphemeralPayload(const Publication& p, const std::string& ephemeral_id);
// NOTIFY payloads must be shorter than 8000 bytes.
constexpr size_t kMaxPayloadBytes = 7999;

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
