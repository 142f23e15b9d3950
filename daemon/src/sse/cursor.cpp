#include "sse/cursor.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "auth/claims.hpp"
#include "sse/frame.hpp"

namespace evstream::sse {

Cursor::Cursor(CursorIo* io, CursorLimits limits, std::vector<std::string> topics, core::Metrics* metrics)
    : io_(io), limits_(limits), topics_(std::move(topics)), metrics_(metrics) {}

bool Cursor::TopicsMatch(const std::string& entity, const std::string& id) const {
  return auth::AnyTopicMatches(topics_, entity, id);
}

std::string Cursor::SafeId(const CursorIo& io) {
  return io.FeedPositioned() ? std::to_string(io.FeedCursor().position) : std::string();
}

int64_t Cursor::ParsePosition(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string Cursor::StartId(const CursorIo& io, const std::string& last_event_id) {
  if (last_event_id.empty()) return SafeId(io);
  int64_t from = ParsePosition(last_event_id);
  return from < 0 ? std::string() : std::to_string(from);
}

void Cursor::Begin(const std::string& last_event_id) {
  last_event_id_ = last_event_id;
  if (last_event_id.empty()) {
    // Live from now: everything after the feed's current position is ours, and that position is
    // where a client that leaves before its first event resumes (StartId).
    state_ = State::kLive;
    has_cursor_ = io_->FeedPositioned();
    cursor_ = io_->FeedCursor();
    return;
  }
  resume_from_ = ParsePosition(last_event_id);
  if (resume_from_ < 0) {
    // Not a position at all: the same answer as an unknown one.
    Reset("unknown position");
    return;
  }
  if (metrics_) metrics_->replays++;
  if (resume_from_ == 0) {
    has_cursor_ = true;
    cursor_ = {0, 0};
    ReadBatch();
  } else {
    state_ = State::kAnchoring;
    io_->ReadAnchor(resume_from_);
  }
}

void Cursor::OnLive(const feed::EventPtr& ev) {
  switch (state_) {
    case State::kIdle:
    case State::kDone:
      return;
    case State::kAnchoring:
    case State::kReading:
    case State::kDraining:
      // Replaying: keep what arrives (bounded); the seam skips what the replay already sent.
      if (pending_incomplete_) return;
      pending_bytes_ += ev->frame->size();
      pending_.push_back(ev);
      if (pending_bytes_ > limits_.max_queue_bytes) {
        // Live traffic outruns the replay: forget it, the log has it (one more replay round).
        pending_.clear();
        pending_bytes_ = 0;
        pending_incomplete_ = true;
      }
      return;
    case State::kLive:
      break;
  }
  if (io_->QueuedBytes() >= limits_.max_queue_bytes) {
    // Too far behind to keep queueing live frames: stop, and catch up from the log once the
    // client has drained (or drop it if it does not). Without a position to catch up from the
    // hard limit decides; an event the topics filter out only advances the cursor.
    if (!has_cursor_ || !auth::AnyTopicMatches(topics_, ev->aggregate_type, ev->aggregate_id)) {
      Deliver(ev);
      return;
    }
    if (metrics_) metrics_->lagging++;
    state_ = State::kDraining;
    ReadWhenDrained();
    return;
  }
  Deliver(ev);
}

void Cursor::Deliver(const feed::EventPtr& ev) {
  if (has_cursor_ && ev->key <= cursor_) return;  // already sent (replay/live seam)
  cursor_ = ev->key;
  has_cursor_ = true;
  if (!auth::AnyTopicMatches(topics_, ev->aggregate_type, ev->aggregate_id)) return;
  if (metrics_) metrics_->events_delivered++;
  avg_frame_bytes_ = (avg_frame_bytes_ * 7 + ev->frame->size()) / 8;
  io_->Send(ev->frame);
}

// The tx of the client's last position anchors it in the (tx, position) order.
void Cursor::OnAnchor(bool ok, bool found, uint64_t tx) {
  if (state_ != State::kAnchoring) return;
  if (!ok) {
    Finish();
    io_->CloseAfterFlush();  // the client retries
    return;
  }
  if (!found) {
    Reset("unknown position");
    return;
  }
  cursor_ = {tx, resume_from_};
  has_cursor_ = true;
  ReadBatch();
}

void Cursor::ReadBatch() {
  // Events fanned out before this read are in its result; only later ones need keeping.
  pending_.clear();
  pending_bytes_ = 0;
  pending_incomplete_ = false;
  waiting_ = false;
  // Read about what the client can take now (half the queue limit), not a whole batch of big
  // events that would be thrown away when the queue fills.
  size_t fit = limits_.max_queue_bytes / 2 / std::max<size_t>(avg_frame_bytes_, 64);
  size_t limit = std::clamp<size_t>(fit, 16, static_cast<size_t>(std::max(limits_.batch_size, 16)));
  read_limit_ = static_cast<int>(limit);
  state_ = State::kReading;
  io_->ReadAfter(cursor_.position, read_limit_);
}

void Cursor::OnReplayRows(ReadStatus status, const std::vector<ReplayRow>& rows) {
  if (state_ != State::kReading) return;
  if (status == ReadStatus::kUnknownPosition) {
    Reset("unknown position");  // our position was erased while we replayed
    return;
  }
  if (status == ReadStatus::kFailed) {
    Finish();
    io_->CloseAfterFlush();
    return;
  }
  bool full = rows.size() >= static_cast<size_t>(read_limit_);
  for (const ReplayRow& row : rows) {
    if (state_ == State::kDone) return;
    if (io_->QueuedBytes() >= limits_.max_queue_bytes) {
      full = true;  // the rest of this batch after the client drains
      break;
    }
    if (!row.event) {
      if (!has_cursor_ || cursor_ < row.key) cursor_ = row.key;  // another channel: only move on
      has_cursor_ = true;
      continue;
    }
    Deliver(row.event);
  }
  if (state_ == State::kDone) return;
  if (full || pending_incomplete_) {
    state_ = State::kDraining;
    ReadWhenDrained();
  } else {
    GoLive();
  }
}

// Paces a replay: the next batch is read once the client has taken most of the last one. A
// client that makes no room within the stall timeout is dropped with event: overflow.
void Cursor::ReadWhenDrained() {
  if (io_->QueuedBytes() < limits_.max_queue_bytes / 2) {
    ReadBatch();
    return;
  }
  uint64_t now = io_->NowMs();
  if (!waiting_) {
    waiting_ = true;
    waiting_since_ = now;
  }
  if (now - waiting_since_ > limits_.stall_timeout_ms) {
    Finish();
    io_->DropSlowClient();
    return;
  }
  io_->WaitForDrain();
}

void Cursor::OnDrainTick() {
  if (state_ == State::kDraining) ReadWhenDrained();
}

void Cursor::GoLive() {
  state_ = State::kLive;
  auto pending = std::move(pending_);
  pending_.clear();
  pending_bytes_ = 0;
  pending_incomplete_ = false;
  for (const auto& ev : pending) {
    if (state_ != State::kLive) return;
    Deliver(ev);
  }
}

// The client's position is not in the log: say so, and continue live from the feed's position
// (the frame's id moves the client's Last-Event-ID there).
void Cursor::Reset(const std::string& reason) {
  if (metrics_) metrics_->resets++;
  feed::LogKey at = io_->FeedCursor();
  nlohmann::ordered_json data = {{"type", "reset"},
                                 {"reason", reason},
                                 {"lastEventId", last_event_id_},
                                 {"position", at.position}};
  io_->Send(std::make_shared<const std::string>(
      Frame("reset", data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), SafeId(*io_))));
  cursor_ = at;
  has_cursor_ = io_->FeedPositioned();
  GoLive();
}

void Cursor::OnFeedPositioned() {
  if (state_ != State::kLive || has_cursor_ || !io_->FeedPositioned()) return;
  cursor_ = io_->FeedCursor();
  has_cursor_ = true;
  // An id-only frame: it moves the client's Last-Event-ID and dispatches no event.
  io_->Send(std::make_shared<const std::string>("id: " + std::to_string(cursor_.position) + "\n\n"));
}

}  // namespace evstream::sse
