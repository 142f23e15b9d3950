#include "feed/feed.hpp"

#include <algorithm>
#include <cstdlib>

#include "core/guard.hpp"
#include "core/log.hpp"

namespace evstream::feed {
namespace {
const std::string kReadSql = std::string("SELECT ") + kEventColumns +
                             " FROM evstream.read_after($1::bigint, $2::int) e";
// The last event below the delivery horizon (evstream.log_tail: the extension's one definition).
const char* const kTailSql = "SELECT position, order_key::text FROM evstream.log_tail()";
const char* const kBeforeSql =
    "SELECT position, order_key::text FROM evstream.events"
    " WHERE (order_key, position) < ($1::bigint, $2::bigint)"
    " ORDER BY order_key DESC, position DESC LIMIT 1";
// Whether committed events wait behind an open appending transaction: after every short read,
// so the cheap check (one step of events_order_idx; tests/pgtap/plans.sql).
const char* const kHeldBackSql = "SELECT evstream._held_back()";
// And, only while they do, which transaction holds them (evstream.horizon() reads
// pg_stat_activity: several times the cost of the read itself).
const char* const kHolderSql =
    "SELECT coalesce(extract(epoch FROM h.held_for), 0)::float8, h.held_back,"
    " coalesce(h.pid, 0), coalesce(h.database::text, ''), coalesce(h.state, ''),"
    " coalesce(extract(epoch FROM clock_timestamp() - h.xact_start), 0)::float8"
    " FROM evstream.horizon() h";
}  // namespace

// Typed reads of every column (BadRow when the row does not have the promised shape).
EventRow RowAt(const QueryResult& r, int i) {
  if (r.columns() < kEventColumnCount) throw BadRow("an event row needs " + std::to_string(kEventColumnCount) + " columns");
  EventRow row;
  row.position = r.Int64(i, 0);
  row.tx = r.Uint64(i, 1);
  row.channel = r.Text(i, 2);
  row.aggregate_type = r.Text(i, 3);
  row.aggregate_id = r.Text(i, 4);
  row.version = r.Int32(i, 5);
  row.event_type = r.Text(i, 6);
  row.event_id = r.Text(i, 7);
  row.data_json = r.Text(i, 8);
  row.metadata_json = r.Text(i, 9);
  auto display = r.TextOrNull(i, 10);
  row.display_null = !display;
  if (display) row.display_json = std::move(*display);
  row.timestamp = r.Text(i, 11);
  auto correlation = r.TextOrNull(i, 12);
  row.correlation_null = !correlation;
  if (correlation) row.correlation_id = std::move(*correlation);
  auto causation = r.TextOrNull(i, 13);
  row.causation_null = !causation;
  if (causation) row.causation_id = std::move(*causation);
  row.created_by = r.Text(i, 14);
  row.created_epoch = r.Double(i, 15);
  return row;
}

// The feed's own callbacks (query results, timers, doorbells) run inside the exception boundary;
// an exception resets the feed: it reconnects and catches up from its cursor.
template <typename Fn>
auto Feed::Guarded(const char* where, Fn fn) {
  return [this, where, fn = std::move(fn)](auto&&... args) mutable {
    core::Guard(where, [&] { fn(std::forward<decltype(args)>(args)...); }, [&] { conn_.Reset("internal error"); });
  };
}

Feed::Feed(uv_loop_t* loop, FeedOptions opts, hub::Fanout* fanout, core::Metrics* metrics)
    : loop_(loop), opts_(std::move(opts)), fanout_(fanout), metrics_(metrics),
      conn_(loop, opts_.conninfo, "feed") {
  conn_.SetOptions(opts_.pg_options);
  if (uv_timer_init(loop_, held_back_timer_.get()) == 0) held_back_timer_.MarkInitialised();
  held_back_timer_->data = this;
  if (uv_timer_init(loop_, poll_timer_.get()) == 0) poll_timer_.MarkInitialised();
  poll_timer_->data = this;
  if (uv_timer_init(loop_, next_read_timer_.get()) == 0) next_read_timer_.MarkInitialised();
  next_read_timer_->data = this;
  conn_.on_connected = Guarded("feed connected", [this] { OnConnected(); });
  conn_.on_disconnected = [this](const std::string&) {
    metrics_->db_connected = false;
    fanout_->Connected(false);
    busy_ = false;
    if (next_read_timer_.initialised()) uv_timer_stop(next_read_timer_.get());
    uv_timer_stop(held_back_timer_.get());
    bool was_listening = listening_;
    listening_ = false;
    if (was_listening && on_listener_lost) core::Guard("ephemeral listener lost", [&] { on_listener_lost(); });
  };
  // The channel decides; the payload is never looked at. A failure on the doorbell resets the feed.
  conn_.on_notify = [this](const std::string& channel, const std::string&, int be_pid) {
    if (channel == kDoorbellChannel)
      core::Guard("feed doorbell", [&] { OnDoorbell(); }, [&] { conn_.Reset("internal error"); });
    else if (channel == kEphemeralDoorbellChannel && on_ephemeral_doorbell)
      core::Guard("ephemeral doorbell", [&] { on_ephemeral_doorbell(be_pid); });  // the outbox guards its own
  };
}

void Feed::Start() {
  conn_.Start();
  // Safety net: the log is the truth and a doorbell only a wake-up; read now and then anyway.
  if (opts_.poll_ms > 0)
    uv_timer_start(poll_timer_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Feed*>(t->data);
      self->Guarded("feed poll timer", [self] {
        if (self->positioned_ && !self->busy_ && self->Connected()) self->Read();
      })();
    }, opts_.poll_ms, opts_.poll_ms);
}

void Feed::Close() {
  uv_timer_stop(held_back_timer_.get());
  if (next_read_timer_.initialised()) uv_timer_stop(next_read_timer_.get());
  uv_timer_stop(poll_timer_.get());
  conn_.Close();
}

void Feed::OnConnected() {
  metrics_->db_connected = true;
  fanout_->Connected(true);
  if (ever_connected_) metrics_->db_reconnects++;
  ever_connected_ = true;
  busy_ = true;
  doorbell_pending_ = false;
  // LISTEN before reading: a commit after this point rings a doorbell we will hear.
  ListenDoorbell();
}

// A LISTEN that failed while the connection stays up (an error of the statement) would leave the
// feed unpositioned and the outbox never anchored until some later reconnect: drop the connection
// (reconnect with backoff, which listens again). After a lost connection this does nothing.
void Feed::ListenFailed(const QueryResult& r) {  // also: the end of the log could not be read
  conn_.Reset("feed setup failed (LISTEN or the end of the log): " + r.error);
}

void Feed::ListenDoorbell() {
  conn_.Send(std::string("LISTEN ") + kDoorbellChannel, {}, Guarded("feed listen", [this](QueryResult& r) {
    if (!r.ok()) {
      core::LogWarn("LISTEN failed", {{"channel", kDoorbellChannel}, {"error", r.error}});
      busy_ = false;
      ListenFailed(r);
      return;
    }
    ListenEphemeral();
  }));
}

// The outbox reader's doorbell, on this connection too (one listening backend per instance).
// A failure is handled as the log's LISTEN failing (logged; the connection is dropped and the
// reconnect listens again).
void Feed::ListenEphemeral() {
  conn_.Send(std::string("LISTEN ") + kEphemeralDoorbellChannel, {}, Guarded("feed listen", [this](QueryResult& r) {
    if (!r.ok()) {
      core::LogWarn("LISTEN failed", {{"channel", kEphemeralDoorbellChannel}, {"error", r.error}});
      busy_ = false;
      ListenFailed(r);
      return;
    }
    listening_ = true;
    if (on_listening) on_listening();
    if (positioned_)
      Read();  // catch up from the last position fanned out
    else
      FindTail();
  }));
}

void Feed::FindTail() {
  conn_.Send(kTailSql, {}, Guarded("feed tail", [this](QueryResult& r) {
    if (!r.ok()) {
      core::LogWarn("reading the end of the log failed", {{"error", r.error}});
      busy_ = false;
      // Unpositioned, the feed would never read (the poll reads only from a position): drop the
      // connection, the reconnect (with backoff) listens and looks for the end again.
      ListenFailed(r);
      return;
    }
    if (r.rows() == 1) cursor_ = {r.Uint64(0, 1), r.Int64(0, 0)};
    positioned_ = true;
    metrics_->last_position = cursor_.position;
    core::LogInfo("feed positioned", {{"position", cursor_.position}});
    fanout_->Positioned(cursor_);
    Read();
  }));
}

void Feed::Read() {
  busy_ = true;
  if (fanout_->Backlog() > hub::Fanout::kMaxBacklog && next_read_timer_.initialised()) {
    // Another loop has not taken what it was given yet: read when it has (doorbells meanwhile
    // wait in doorbell_pending_; the read after the wait covers them).
    doorbell_pending_ = true;
    ReadLater(kBacklogWaitMs);
    return;
  }
  doorbell_pending_ = false;
  uv_timer_stop(held_back_timer_.get());
  metrics_->feed_reads++;
  conn_.Send(kReadSql, {std::to_string(cursor_.position), std::to_string(opts_.batch_size)},
             Guarded("feed rows", [this](QueryResult& r) { OnRows(r); }));
}

// Read again after `ms` (0: at the start of the next loop turn), busy meanwhile.
void Feed::ReadLater(uint64_t ms) {
  if (!next_read_timer_.initialised()) return Read();
  busy_ = true;
  uv_timer_start(next_read_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Feed*>(t->data);
    self->Guarded("feed next read", [self] {
      if (self->busy_ && self->Connected()) self->Read();
    })();
  }, ms, 0);
}

void Feed::OnRows(QueryResult& r) {
  if (!r.ok()) {
    busy_ = false;
    if (r.sqlstate == "EV006") {
      // Our cursor's event was erased (erase_aggregate): re-anchor on the last surviving event
      // before it. Events re-read from there are skipped by every stream (their cursors).
      core::LogWarn("feed position erased from the log; re-anchoring", {{"position", cursor_.position}});
      busy_ = true;
      conn_.Send(kBeforeSql, {std::to_string(cursor_.tx), std::to_string(cursor_.position)},
                 Guarded("feed re-anchor", [this](QueryResult& b) {
                   if (!b.ok()) {
                     busy_ = false;
                     return;
                   }
                   cursor_ = {0, 0};
                   if (b.rows() == 1) cursor_ = {b.Uint64(0, 1), b.Int64(0, 0)};
                   Read();
                 }));
    } else if (!r.sqlstate.empty()) {
      core::LogError("feed read failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
    }
    return;  // connection errors: the reconnect catches up
  }
  int n = r.rows();
  core::LogDebug("feed read", {{"after", cursor_.position}, {"rows", n}, {"doorbell_pending", doorbell_pending_}});
  double now = core::NowSeconds();
  std::vector<EventPtr> batch;
  batch.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    EventPtr ev = MakeEvent(RowAt(r, i));
    cursor_ = ev->key;
    metrics_->events_read++;
    metrics_->last_position = ev->key.position;
    metrics_->feed_lag_seconds = now - ev->created_epoch;
    batch.push_back(std::move(ev));
  }
  fanout_->Events(std::move(batch));  // every loop's hub, once each
  if (n >= opts_.batch_size || doorbell_pending_) {
    // More to read: not before this turn's writes (this batch's frames, one write per
    // connection at the end of the turn) are out. A doorbell that rang while this batch was
    // read means commits arrive faster than the feed cycles: linger a moment so that the next
    // read takes several, and each connection gets one write for them instead of one each (a
    // write per connection is most of a delivery's cost). Idle, nothing is pending and nothing
    // waits.
    ReadLater(n < opts_.batch_size ? kLingerMs : 0);
    return;
  }
  CheckHeldBack();
}

// After a short read: if committed events wait behind an older open transaction, re-read soon
// (their own doorbell may already have rung while they were unreadable).
void Feed::CheckHeldBack() {
  conn_.Send(kHeldBackSql, {}, Guarded("feed held-back check", [this](QueryResult& r) {
    if (!r.ok()) {
      busy_ = false;
      return;
    }
    if (r.rows() == 1 && r.Bool(0, 0)) {
      conn_.Send(kHolderSql, {}, Guarded("feed held-back holder", [this](QueryResult& h) {
        if (!h.ok()) {
          busy_ = false;
          return;
        }
        // Still held back, unless the holder ended between the two queries.
        AfterHeldBackCheck(RecordHolder(h.rows() == 1 ? &h : nullptr));
      }));
      return;
    }
    RecordHolder(nullptr);
    AfterHeldBackCheck(false);
  }));
}

// The held-back gauges: from evstream.horizon()'s row, or all zero (nothing held back, or the
// holder ended between the two queries).
bool Feed::RecordHolder(const QueryResult* h) {
  bool held = h != nullptr && h->Int64(0, 1) > 0;
  metrics_->held_back_seconds = held ? h->Double(0, 0) : 0;
  metrics_->held_back_events = held ? h->Int64(0, 1) : 0;
  metrics_->held_back_pid = held ? h->Int32(0, 2) : 0;
  metrics_->SetHeldBackText(held ? h->Text(0, 3) : "", held ? h->Text(0, 4) : "");
  metrics_->held_back_open_seconds = held ? h->Double(0, 5) : 0;
  return held;
}

void Feed::AfterHeldBackCheck(bool held_back) {
  busy_ = false;
  core::LogDebug("feed held-back check", {{"held_back", held_back}, {"doorbell_pending", doorbell_pending_}});
  if (doorbell_pending_) {
    Read();
    return;
  }
  // A doorbell can ring a moment before its commit is visible to us: look again a few times.
  bool grace = !held_back && grace_reads_ > 0;
  if (grace) grace_reads_--;
  // While a long transaction holds events back, look less often (up to 8x the period); a
  // doorbell (its commit, or any other) resets the pace.
  held_back_streak_ = held_back ? held_back_streak_ + 1 : 0;
  uint64_t delay = static_cast<uint64_t>(opts_.held_back_ms) << std::min(held_back_streak_ / 20, 3);
  if (held_back || grace)
    uv_timer_start(held_back_timer_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Feed*>(t->data);
      self->Guarded("feed held-back timer", [self] {
        if (!self->busy_ && self->Connected()) self->Read();
      })();
    }, delay, 0);
}

void Feed::OnDoorbell() {
  metrics_->doorbells++;
  grace_reads_ = kGraceReads;
  held_back_streak_ = 0;
  core::LogDebug("doorbell", {{"busy", busy_}});
  if (!positioned_ || busy_) {
    doorbell_pending_ = true;
    return;
  }
  Read();
}

}  // namespace evstream::feed
