// Process-wide counters, rendered in the Prometheus text format for GET /metrics.
#pragma once
#include <cstdint>
#include <string>

namespace evstream::core {

struct Metrics {
  int64_t http_connections = 0;       // open TCP connections
  int64_t h2_connections = 0;         // of them, carrying HTTP/2
  int64_t h2_streams = 0;             // open HTTP/2 streams
  int64_t sse_clients = 0;            // open event streams
  uint64_t http_requests = 0;
  uint64_t events_read = 0;           // events read from the log by the feed
  uint64_t events_delivered = 0;      // event frames queued to clients (live + replay)
  uint64_t bytes_sent = 0;
  uint64_t slow_client_drops = 0;
  uint64_t lagging = 0;               // streams that fell behind and caught up from the log
  uint64_t auth_failures = 0;
  uint64_t forbidden = 0;
  uint64_t resets = 0;
  uint64_t reauths = 0;
  uint64_t replays = 0;
  uint64_t replay_reads = 0;         // replay batches read from the log (each a bounded pool job)
  uint64_t db_reconnects = 0;
  uint64_t doorbells = 0;
  uint64_t feed_reads = 0;
  uint64_t ephemeral_received = 0;    // NOTIFY evstream_ephemeral payloads fanned out
  uint64_t ephemeral_delivered = 0;   // ephemeral frames queued to clients
  uint64_t ephemeral_dropped = 0;     // ephemeral frames not sent: the client's queue was full
  uint64_t ephemeral_published = 0;   // evstream.publish calls made for POST /api/publish
  uint64_t ephemeral_coalesced = 0;   // chunks merged into an earlier chunk of their stream
  uint64_t presence_messages = 0;     // presence messages from other instances (outbox)
  uint64_t outbox_doorbells = 0;      // NOTIFY evstream_ephemeral doorbells (payload ignored)
  uint64_t outbox_reads = 0;          // evstream._ephemeral_read calls
  uint64_t outbox_rows = 0;           // outbox rows handed out (events + presence messages)
  uint64_t outbox_rows_own = 0;       // own published rows handed out from the publish answer
  uint64_t outbox_doorbells_own = 0;  // doorbells rung by the publisher's own commits (no read)
  uint64_t outbox_rows_invalid = 0;   // outbox rows dropped as malformed
  uint64_t outbox_pruned = 0;         // outbox rows deleted by this instance
  uint64_t outbox_gaps_given_up = 0;  // outbox ids given up (gap bound reached)
  int64_t outbox_gaps = 0;            // outbox ids below the cursor still awaited
  uint64_t limited = 0;               // 429: per-address or per-sub connection limit
  uint64_t shed = 0;                  // 503: unread-bytes budget or database queue full
  uint64_t request_timeouts = 0;      // 408: headers or body too slow
  int64_t db_queued = 0;              // pool jobs waiting for a connection
  int64_t pending_bytes = 0;          // bytes held in requests still being received
  int64_t last_position = 0;          // last position delivered by the feed
  double feed_lag_seconds = 0;        // commit-to-fan-out delay of the last event
  bool db_connected = false;
  // Delivery held back by an open appending transaction (evstream.horizon(), at the feed's last
  // held-back check): how long, how many committed events wait, and the holder.
  double held_back_seconds = 0;
  int64_t held_back_events = 0;
  int64_t held_back_pid = 0;
  std::string held_back_database, held_back_state;
  double held_back_open_seconds = 0;  // how long the holder's transaction has been open

  std::string Render() const;
};

}  // namespace evstream::core
