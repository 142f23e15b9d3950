#include "sse/session.hpp"

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "feed/feed.hpp"
#include "feed/pg.hpp"
#include "sse/frame.hpp"

namespace evstream::sse {
namespace {
const std::string kAnchorSql = "SELECT tx::text FROM evstream.events WHERE position = $1::bigint";
const std::string kReplaySql = std::string("SELECT ") + feed::kEventColumns +
                               " FROM evstream.read_after($1::bigint, $2::int, $3::text[]) e";
constexpr int kPaceMs = 5;

}  // namespace

Session::Session(StreamService* svc, http::Connection* conn, auth::ChannelSet channels,
                 std::vector<std::string> topics, int batch_ms)
    : svc_(svc), conn_(conn), channels_(std::move(channels)), topics_(std::move(topics)),
      batch_ms_(batch_ms) {
  if (uv_timer_init(svc_->d_.loop, timer_.get()) == 0) timer_.MarkInitialised();
  if (uv_timer_init(svc_->d_.loop, pace_timer_.get()) == 0) pace_timer_.MarkInitialised();
  timer_->data = this;
  pace_timer_->data = this;
  svc_->sessions_.insert(this);
  svc_->d_.metrics->sse_clients++;
}

Session::~Session() {
  svc_->d_.hub->Remove(this);
  if (svc_->d_.presence && !presence_user_.empty()) svc_->d_.presence->Leave(presence_user_, channels_.exact);
  svc_->sessions_.erase(this);
  svc_->d_.metrics->sse_clients--;
}

void Session::JoinPresence(const std::string& user) {
  if (!svc_->d_.presence || user.empty() || !Alive()) return;
  presence_user_ = user;
  svc_->d_.presence->Join(user, channels_.exact);
}

void Session::SendFrame(const http::Frame& f) {
  if (Alive()) conn_->Send(f);
}

void Session::Begin(int64_t resume_from) {
  if (batch_ms_ > 0) {
    conn_->SetHold(true);
    uv_timer_start(timer_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Session*>(t->data);
      if (self->Alive()) self->conn_->Flush();
    }, batch_ms_, batch_ms_);
  }
  svc_->d_.hub->Add(this);  // before the replay's first read: nothing can fall in between
  if (resume_from < 0) {
    // Live from now: everything after the feed's current position is ours.
    live_ = true;
    has_cursor_ = svc_->d_.feed->Positioned();
    cursor_ = svc_->d_.feed->Cursor();
    return;
  }
  svc_->d_.metrics->replays++;
  resume_from_ = resume_from;
  if (resume_from == 0) {
    has_cursor_ = true;
    cursor_ = {0, 0};
    ReplayBatch();
  } else {
    ReplayAnchor();
  }
}

void Session::OnEvent(const feed::EventPtr& ev) {
  if (!Alive()) return;
  if (!live_) {
    if (pending_incomplete_) return;
    pending_bytes_ += ev->frame->size();
    pending_.push_back(ev);
    if (pending_bytes_ > svc_->d_.config->max_queue_bytes) {
      // Live traffic outruns the replay: forget it, the log has it (one more replay round).
      pending_.clear();
      pending_bytes_ = 0;
      pending_incomplete_ = true;
    }
    return;
  }
  if (conn_->QueuedBytes() >= svc_->d_.config->max_queue_bytes) {
    // Too far behind to keep queueing live frames: stop, and catch up from the log once the
    // client has drained (or drop it if it does not).
    // Without a position to catch up from (feed not positioned yet), the hard limit decides;
    // an event the topics filter out only advances the cursor.
    if (!has_cursor_ || !auth::AnyTopicMatches(topics_, ev->aggregate_type, ev->aggregate_id)) {
      Deliver(ev);
      return;
    }
    live_ = false;
    svc_->d_.metrics->lagging++;
    ReplayWhenDrained();
    return;
  }
  Deliver(ev);
}

void Session::OnEphemeral(const feed::EphemeralPtr& ev) {
  if (!Alive()) return;
  // Events without an entity are channel-wide (presence, typing): every topic filter passes them.
  if (!ev->entity.empty() && !auth::AnyTopicMatches(topics_, ev->entity, ev->id)) return;
  if (conn_->QueuedBytes() >= svc_->d_.config->max_queue_bytes) {
    svc_->d_.metrics->ephemeral_dropped++;
    return;
  }
  svc_->d_.metrics->ephemeral_delivered++;
  conn_->Send(ev->frame);
}

void Session::Deliver(const feed::EventPtr& ev) {
  if (has_cursor_ && ev->key <= cursor_) return;  // already replayed
  cursor_ = ev->key;
  has_cursor_ = true;
  if (!auth::AnyTopicMatches(topics_, ev->aggregate_type, ev->aggregate_id)) return;
  svc_->d_.metrics->events_delivered++;
  avg_frame_bytes_ = (avg_frame_bytes_ * 7 + ev->frame->size()) / 8;
  conn_->Send(ev->frame);
}

// The tx of the client's last position anchors it in the (tx, position) order.
void Session::ReplayAnchor() {
  std::weak_ptr<Session> weak = shared_from_this();
  svc_->d_.pool->Query(kAnchorSql, {std::to_string(resume_from_)}, [weak](feed::QueryResult& r) {
    auto self = weak.lock();
    if (!self || !self->Alive()) return;
    if (!r.ok()) {
      core::LogWarn("replay anchor failed", {{"error", r.error}});
      self->conn_->CloseAfterFlush();  // the client retries
      return;
    }
    if (r.rows() == 0) {
      self->Reset("unknown position");
      return;
    }
    self->cursor_ = {std::strtoull(r.value(0, 0), nullptr, 10), self->resume_from_};
    self->has_cursor_ = true;
    self->ReplayBatch();
  });
}

void Session::ReplayBatch() {
  // Events published before this query are in its result; only later ones need buffering.
  pending_.clear();
  pending_bytes_ = 0;
  pending_incomplete_ = false;
  std::weak_ptr<Session> weak = shared_from_this();
  // Read about what the client can take now (half the queue limit), not a whole batch of big
  // events that would be thrown away when the queue fills.
  size_t fit = svc_->d_.config->max_queue_bytes / 2 / std::max<size_t>(avg_frame_bytes_, 64);
  size_t limit = std::clamp<size_t>(fit, 16, static_cast<size_t>(svc_->d_.config->batch_size));
  feed::Params params = {std::to_string(cursor_.position), std::to_string(limit), std::nullopt};
  replay_limit_ = static_cast<int>(limit);
  if (!channels_.HasPatterns()) params[2] = feed::TextArray(channels_.exact);
  svc_->d_.pool->Query(kReplaySql, std::move(params), [weak](feed::QueryResult& r) {
    auto self = weak.lock();
    if (self && self->Alive()) self->OnReplayRows(r);
  });
}

void Session::OnReplayRows(feed::QueryResult& r) {
  if (!r.ok()) {
    if (r.sqlstate == "EV006") {
      Reset("unknown position");
      return;
    }
    core::LogWarn("replay failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
    conn_->CloseAfterFlush();
    return;
  }
  int n = r.rows();
  bool full = n >= replay_limit_;
  for (int i = 0; i < n && Alive(); i++) {
    if (conn_->QueuedBytes() >= svc_->d_.config->max_queue_bytes) {
      full = true;  // the rest of this batch after the client drains
      break;
    }
    feed::EventRow row = feed::RowAt(r, i);
    if (!channels_.Matches(row.channel)) {
      cursor_ = {row.tx, row.position};
      continue;
    }
    Deliver(feed::MakeEvent(row));
  }
  if (!Alive()) return;
  if (full || pending_incomplete_)
    ReplayWhenDrained();
  else
    GoLive();
}

// Paces a replay: the next batch is read once the client has taken most of the last one. A
// client that makes no room within the stall timeout is dropped with event: overflow.
void Session::ReplayWhenDrained() {
  if (conn_->QueuedBytes() < svc_->d_.config->max_queue_bytes / 2) {
    waiting_since_ = 0;
    ReplayBatch();
    return;
  }
  uint64_t now = uv_now(svc_->d_.loop);
  if (waiting_since_ == 0) waiting_since_ = now;
  if (now - waiting_since_ > static_cast<uint64_t>(svc_->d_.config->stall_timeout_ms)) {
    conn_->DropSlowClient();
    return;
  }
  uv_timer_start(pace_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Session*>(t->data);
    if (self->Alive()) self->ReplayWhenDrained();
  }, kPaceMs, 0);
}

void Session::GoLive() {
  live_ = true;
  auto pending = std::move(pending_);
  pending_.clear();
  pending_bytes_ = 0;
  for (const auto& ev : pending) {
    if (!Alive()) return;
    Deliver(ev);
  }
}

// The client's position is not in the log: say so, and continue live from the feed's position
// (the frame's id moves the browser's lastEventId there).
void Session::Reset(const std::string& reason) {
  svc_->d_.metrics->resets++;
  feed::LogKey at = svc_->d_.feed->Cursor();
  nlohmann::ordered_json data = {{"type", "reset"},
                         {"reason", reason},
                         {"lastEventId", std::to_string(resume_from_)},
                         {"position", at.position}};
  std::string id = at.position > 0 ? std::to_string(at.position) : "";
  conn_->Send(std::make_shared<const std::string>(Frame("reset", data.dump(), id)));
  cursor_ = at;
  has_cursor_ = at.position > 0 || at.tx > 0;
  GoLive();
}

}  // namespace evstream::sse
