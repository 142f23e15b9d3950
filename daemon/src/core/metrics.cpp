#include "core/metrics.hpp"

#include <sstream>

namespace evstream::core {

std::string Metrics::Render() const {
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << ' ' << value << '\n';
  };
  metric("evstream_http_connections", "gauge", "Open HTTP connections.", http_connections);
  metric("evstream_h2_connections", "gauge", "Open connections speaking HTTP/2 (h2 or h2c).", h2_connections);
  metric("evstream_h2_streams", "gauge", "Open HTTP/2 streams.", h2_streams);
  metric("evstream_sse_connections", "gauge", "Open Server-Sent Events streams.", sse_clients);
  metric("evstream_http_requests_total", "counter", "HTTP requests parsed.", http_requests);
  metric("evstream_events_read_total", "counter", "Events read from the log by the live feed.",
         events_read);
  metric("evstream_events_delivered_total", "counter", "Event frames queued to clients.",
         events_delivered);
  metric("evstream_bytes_sent_total", "counter", "Bytes written to clients.", bytes_sent);
  metric("evstream_slow_client_drops_total", "counter",
         "Clients disconnected because their unsent queue passed the limit.", slow_client_drops);
  metric("evstream_lagging_total", "counter",
         "Streams that passed the queue limit and caught up from the log instead of live frames.",
         lagging);
  metric("evstream_auth_failures_total", "counter", "Requests refused with 401.", auth_failures);
  metric("evstream_forbidden_total", "counter", "Requests refused with 403.", forbidden);
  metric("evstream_resets_total", "counter", "Streams sent event: reset (unknown position).", resets);
  metric("evstream_reauths_total", "counter", "Streams ended with event: reauth (token expired).", reauths);
  metric("evstream_replays_total", "counter", "Streams resumed from the log.", replays);
  metric("evstream_replay_reads_total", "counter", "Replay batches read from the log (at most --batch-size rows each).",
         replay_reads);
  metric("evstream_db_reconnects_total", "counter", "Database reconnections of the feed.",
         db_reconnects);
  metric("evstream_doorbells_total", "counter", "NOTIFY evstream doorbells received.", doorbells);
  metric("evstream_feed_reads_total", "counter", "read_after calls by the live feed.", feed_reads);
  metric("evstream_ephemeral_received_total", "counter", "Ephemeral events read from the outbox.",
         ephemeral_received);
  metric("evstream_ephemeral_delivered_total", "counter", "Ephemeral frames queued to clients.",
         ephemeral_delivered);
  metric("evstream_ephemeral_dropped_total", "counter",
         "Ephemeral frames skipped because the client's queue was full.", ephemeral_dropped);
  metric("evstream_ephemeral_published_total", "counter",
         "Ephemeral events published for POST /api/publish (after coalescing).", ephemeral_published);
  metric("evstream_ephemeral_coalesced_total", "counter",
         "Chunks merged into an earlier chunk of the same stream.", ephemeral_coalesced);
  metric("evstream_presence_messages_total", "counter", "Presence messages from other instances.",
         presence_messages);
  metric("evstream_outbox_doorbells_total", "counter",
         "NOTIFY evstream_ephemeral doorbells received (payloads are ignored).", outbox_doorbells);
  metric("evstream_outbox_reads_total", "counter", "Reads of the ephemeral outbox.", outbox_reads);
  metric("evstream_outbox_rows_total", "counter", "Outbox rows handed out (events and presence).",
         outbox_rows);
  metric("evstream_outbox_rows_own_total", "counter",
         "Rows this instance published (POST /api/publish) handed to its own subscribers from the publish "
         "statement's answer, without reading them back.", outbox_rows_own);
  metric("evstream_outbox_doorbells_own_total", "counter",
         "Doorbells rung by this instance's own publish commits (no read needed).", outbox_doorbells_own);
  metric("evstream_outbox_rows_invalid_total", "counter", "Outbox rows dropped as malformed.",
         outbox_rows_invalid);
  metric("evstream_outbox_pruned_total", "counter", "Outbox rows deleted by this instance.",
         outbox_pruned);
  metric("evstream_outbox_gaps", "gauge",
         "Outbox ids below the cursor not committed yet (awaited until their transaction ends).",
         outbox_gaps);
  metric("evstream_outbox_gaps_given_up_total", "counter",
         "Outbox ids given up because more gaps were open than the bound.", outbox_gaps_given_up);
  metric("evstream_limited_total", "counter",
         "Requests refused with 429 (connections per address or per token sub).", limited);
  metric("evstream_shed_total", "counter",
         "Requests refused with 503 (unread-bytes budget spent, or the database queue full).", shed);
  metric("evstream_request_timeouts_total", "counter",
         "Requests cut with 408 (headers or body not received in time).", request_timeouts);
  metric("evstream_db_queued", "gauge", "Database jobs waiting for a pool connection.", db_queued);
  metric("evstream_pending_bytes", "gauge", "Bytes held in requests still being received.", pending_bytes);
  metric("evstream_last_position", "gauge", "Position of the last event fanned out.", last_position);
  metric("evstream_held_back_seconds", "gauge",
         "How long an open appending transaction has held committed events back (0: none held).",
         held_back_seconds);
  metric("evstream_held_back_events", "gauge", "Committed events waiting behind it.", held_back_events);
  metric("evstream_held_back_pid", "gauge", "Backend pid of the transaction holding them (0: none).",
         held_back_pid);
  metric("evstream_feed_lag_seconds", "gauge",
         "Seconds between the last event's creation and its fan-out.", feed_lag_seconds);
  metric("evstream_db_connected", "gauge", "1 while the feed's database connection is up.",
         db_connected ? 1 : 0);
  return o.str();
}

}  // namespace evstream::core
