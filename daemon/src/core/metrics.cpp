#include "core/metrics.hpp"

#include <sstream>

namespace evstream::core {

void Metrics::SetHeldBackText(std::string database, std::string state) {
  std::lock_guard<std::mutex> lock(text_mu_);
  held_back_database_ = std::move(database);
  held_back_state_ = std::move(state);
}

std::pair<std::string, std::string> Metrics::HeldBackText() const {
  std::lock_guard<std::mutex> lock(text_mu_);
  return {held_back_database_, held_back_state_};
}

std::string Metrics::Render(const std::vector<const Metrics*>& all) {
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, auto field) {
    decltype(((*all.front()).*field).get()) sum{};
    for (const Metrics* m : all) sum += (m->*field).get();
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << ' ' << sum << '\n';
  };
  metric("evstream_http_connections", "gauge", "Open HTTP connections.", &Metrics::http_connections);
  metric("evstream_h2_connections", "gauge", "Open connections speaking HTTP/2 (h2 or h2c).", &Metrics::h2_connections);
  metric("evstream_h2_streams", "gauge", "Open HTTP/2 streams.", &Metrics::h2_streams);
  metric("evstream_sse_connections", "gauge", "Open Server-Sent Events streams.", &Metrics::sse_clients);
  metric("evstream_http_requests_total", "counter", "HTTP requests parsed.", &Metrics::http_requests);
  metric("evstream_events_read_total", "counter", "Events read from the log by the live feed.", &Metrics::events_read);
  metric("evstream_events_delivered_total", "counter", "Event frames queued to clients.", &Metrics::events_delivered);
  metric("evstream_bytes_sent_total", "counter", "Bytes written to clients.", &Metrics::bytes_sent);
  metric("evstream_slow_client_drops_total", "counter",
         "Clients disconnected because their unsent queue passed the limit.", &Metrics::slow_client_drops);
  metric("evstream_lagging_total", "counter",
         "Streams that passed the queue limit and caught up from the log instead of live frames.", &Metrics::lagging);
  metric("evstream_auth_failures_total", "counter", "Requests refused with 401.", &Metrics::auth_failures);
  metric("evstream_forbidden_total", "counter", "Requests refused with 403.", &Metrics::forbidden);
  metric("evstream_resets_total", "counter", "Streams sent event: reset (unknown position).", &Metrics::resets);
  metric("evstream_reauths_total", "counter", "Streams ended with event: reauth (token expired).", &Metrics::reauths);
  metric("evstream_replays_total", "counter", "Streams resumed from the log.", &Metrics::replays);
  metric("evstream_replay_reads_total", "counter", "Replay batches read from the log (at most --batch-size rows each).", &Metrics::replay_reads);
  metric("evstream_db_reconnects_total", "counter", "Database reconnections of the feed.", &Metrics::db_reconnects);
  metric("evstream_doorbells_total", "counter", "NOTIFY evstream doorbells received.", &Metrics::doorbells);
  metric("evstream_feed_reads_total", "counter", "read_after calls by the live feed.", &Metrics::feed_reads);
  metric("evstream_ephemeral_received_total", "counter", "Ephemeral events read from the outbox.", &Metrics::ephemeral_received);
  metric("evstream_ephemeral_delivered_total", "counter", "Ephemeral frames queued to clients.", &Metrics::ephemeral_delivered);
  metric("evstream_ephemeral_dropped_total", "counter",
         "Ephemeral frames skipped because the client's queue was full.", &Metrics::ephemeral_dropped);
  metric("evstream_ephemeral_published_total", "counter",
         "Ephemeral events published for POST /api/publish (after coalescing).", &Metrics::ephemeral_published);
  metric("evstream_ephemeral_coalesced_total", "counter",
         "Chunks merged into an earlier chunk of the same stream.", &Metrics::ephemeral_coalesced);
  metric("evstream_presence_messages_total", "counter", "Presence messages from other instances.", &Metrics::presence_messages);
  metric("evstream_outbox_doorbells_total", "counter",
         "NOTIFY evstream_ephemeral doorbells received (payloads are ignored).", &Metrics::outbox_doorbells);
  metric("evstream_outbox_reads_total", "counter", "Reads of the ephemeral outbox.", &Metrics::outbox_reads);
  metric("evstream_outbox_rows_total", "counter", "Outbox rows handed out (events and presence).", &Metrics::outbox_rows);
  metric("evstream_outbox_rows_own_total", "counter",
         "Rows this instance published (POST /api/publish) handed to its own subscribers from the publish "
         "statement's answer, without reading them back.", &Metrics::outbox_rows_own);
  metric("evstream_outbox_doorbells_own_total", "counter",
         "Doorbells rung by this instance's own publish commits (no read needed).", &Metrics::outbox_doorbells_own);
  metric("evstream_outbox_rows_invalid_total", "counter", "Outbox rows dropped as malformed.", &Metrics::outbox_rows_invalid);
  metric("evstream_outbox_pruned_total", "counter", "Outbox rows deleted by this instance.", &Metrics::outbox_pruned);
  metric("evstream_outbox_gaps", "gauge",
         "Outbox ids below the cursor not committed yet (awaited until their transaction ends).", &Metrics::outbox_gaps);
  metric("evstream_outbox_gaps_given_up_total", "counter",
         "Outbox ids given up because more gaps were open than the bound.", &Metrics::outbox_gaps_given_up);
  metric("evstream_limited_total", "counter",
         "Requests refused with 429 (connections per address or per token sub).", &Metrics::limited);
  metric("evstream_shed_total", "counter",
         "Requests refused with 503 (unread-bytes budget spent, or the database queue full).", &Metrics::shed);
  metric("evstream_request_timeouts_total", "counter",
         "Requests cut with 408 (headers or body not received in time).", &Metrics::request_timeouts);
  metric("evstream_db_queued", "gauge", "Database jobs waiting for a pool connection.", &Metrics::db_queued);
  metric("evstream_pending_bytes", "gauge", "Bytes held in requests still being received.", &Metrics::pending_bytes);
  metric("evstream_last_position", "gauge", "Position of the last event fanned out.", &Metrics::last_position);
  metric("evstream_held_back_seconds", "gauge",
         "How long an open appending transaction has held committed events back (0: none held).", &Metrics::held_back_seconds);
  metric("evstream_held_back_events", "gauge", "Committed events waiting behind it.", &Metrics::held_back_events);
  metric("evstream_held_back_pid", "gauge", "Backend pid of the transaction holding them (0: none).", &Metrics::held_back_pid);
  metric("evstream_feed_lag_seconds", "gauge",
         "Seconds between the last event's creation and its fan-out.", &Metrics::feed_lag_seconds);
  metric("evstream_db_connected", "gauge", "1 while the feed's database connection is up.",
         &Metrics::db_connected);
  o << "# HELP evstream_loop_connections Open HTTP connections of each event loop (--threads).\n"
       "# TYPE evstream_loop_connections gauge\n";
  for (size_t i = 0; i < all.size(); i++)
    o << "evstream_loop_connections{loop=\"" << i << "\"} " << all[i]->http_connections.get() << '\n';
  return o.str();
}

}  // namespace evstream::core
