// Counters, rendered in the Prometheus text format for GET /metrics. Each event loop has its own
// Metrics, written by that loop's thread only; /metrics (on any loop) renders the sum of them
// all. Fields are relaxed atomics: one writer, readers on other threads see a recent value, and
// an increment costs a plain load and store (no locked instruction per delivery).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace evstream::core {

// One number written by one thread and read by any.
template <typename T>
class Stat {
 public:
  Stat(T v = T{}) : v_(v) {}
  Stat(const Stat& o) : v_(o.get()) {}
  Stat& operator=(const Stat& o) { set(o.get()); return *this; }
  T get() const { return v_.load(std::memory_order_relaxed); }
  void set(T v) { v_.store(v, std::memory_order_relaxed); }
  operator T() const { return get(); }
  Stat& operator=(T v) { set(v); return *this; }
  Stat& operator+=(T d) { set(get() + d); return *this; }
  Stat& operator-=(T d) { set(get() - d); return *this; }
  T operator++(int) { T old = get(); set(old + 1); return old; }
  T operator--(int) { T old = get(); set(old - 1); return old; }
  Stat& operator++() { set(get() + 1); return *this; }
  Stat& operator--() { set(get() - 1); return *this; }

 private:
  std::atomic<T> v_;
};

struct Metrics {
  Stat<int64_t> http_connections = 0;       // open TCP connections
  Stat<int64_t> h2_connections = 0;         // of them, carrying HTTP/2
  Stat<int64_t> h2_streams = 0;             // open HTTP/2 streams
  Stat<int64_t> sse_clients = 0;            // open event streams
  Stat<uint64_t> http_requests = 0;
  Stat<uint64_t> events_read = 0;           // events read from the log by the feed
  Stat<uint64_t> events_delivered = 0;      // event frames queued to clients (live + replay)
  Stat<uint64_t> bytes_sent = 0;
  Stat<uint64_t> slow_client_drops = 0;
  Stat<uint64_t> lagging = 0;               // streams that fell behind and caught up from the log
  Stat<uint64_t> auth_failures = 0;
  Stat<uint64_t> forbidden = 0;
  Stat<uint64_t> resets = 0;
  Stat<uint64_t> reauths = 0;
  Stat<uint64_t> replays = 0;
  Stat<uint64_t> replay_reads = 0;         // replay batches read from the log (each a bounded pool job)
  Stat<uint64_t> db_reconnects = 0;
  Stat<uint64_t> doorbells = 0;
  Stat<uint64_t> feed_reads = 0;
  Stat<uint64_t> ephemeral_received = 0;    // NOTIFY evstream_ephemeral payloads fanned out
  Stat<uint64_t> ephemeral_delivered = 0;   // ephemeral frames queued to clients
  Stat<uint64_t> ephemeral_dropped = 0;     // ephemeral frames not sent: the client's queue was full
  Stat<uint64_t> ephemeral_published = 0;   // evstream.publish calls made for POST /api/publish
  Stat<uint64_t> ephemeral_coalesced = 0;   // chunks merged into an earlier chunk of their stream
  Stat<uint64_t> presence_messages = 0;     // presence messages from other instances (outbox)
  Stat<uint64_t> outbox_doorbells = 0;      // NOTIFY evstream_ephemeral doorbells (payload ignored)
  Stat<uint64_t> outbox_reads = 0;          // evstream._ephemeral_read calls
  Stat<uint64_t> outbox_rows = 0;           // outbox rows handed out (events + presence messages)
  Stat<uint64_t> outbox_rows_own = 0;       // own published rows handed out from the publish answer
  Stat<uint64_t> outbox_doorbells_own = 0;  // doorbells rung by the publisher's own commits (no read)
  Stat<uint64_t> outbox_rows_invalid = 0;   // outbox rows dropped as malformed
  Stat<uint64_t> outbox_pruned = 0;         // outbox rows deleted by this instance
  Stat<uint64_t> outbox_gaps_given_up = 0;  // outbox ids given up (gap bound reached)
  Stat<int64_t> outbox_gaps = 0;            // outbox ids below the cursor still awaited
  Stat<uint64_t> limited = 0;               // 429: per-address or per-sub connection limit
  Stat<uint64_t> shed = 0;                  // 503: unread-bytes budget or database queue full
  Stat<uint64_t> request_timeouts = 0;      // 408: headers or body too slow
  Stat<int64_t> db_queued = 0;              // pool jobs waiting for a connection
  Stat<int64_t> pending_bytes = 0;          // bytes held in requests still being received
  Stat<int64_t> last_position = 0;          // last position delivered by the feed
  Stat<double> feed_lag_seconds = 0;        // commit-to-fan-out delay of the last event
  Stat<bool> db_connected = false;
  // Delivery held back by an open appending transaction (evstream.horizon(), at the feed's last
  // held-back check): how long, how many committed events wait, and the holder.
  Stat<double> held_back_seconds = 0;
  Stat<int64_t> held_back_events = 0;
  Stat<int64_t> held_back_pid = 0;
  Stat<double> held_back_open_seconds = 0;  // how long the holder's transaction has been open
  // The holder's database and state (text: under a lock, set by the feed's loop).
  void SetHeldBackText(std::string database, std::string state);
  std::pair<std::string, std::string> HeldBackText() const;

  // The sum over every loop's metrics (gauges of one loop's parts, e.g. the feed's, are 0 in
  // the others).
  static std::string Render(const std::vector<const Metrics*>& all);

 private:
  mutable std::mutex text_mu_;
  std::string held_back_database_, held_back_state_;
};

}  // namespace evstream::core
