#include "sse/session.hpp"

#include <algorithm>
#include <cstdlib>

#include "core/guard.hpp"
#include "core/json_out.hpp"
#include "core/log.hpp"
#include "feed/feed.hpp"
#include "feed/pg.hpp"
#include "sse/frame.hpp"

namespace evstream::sse {
namespace {
const std::string kAnchorSql = "SELECT order_key::text FROM evstream.events WHERE position = $1::bigint";
const std::string kReplaySql = std::string("SELECT ") + feed::kEventColumns +
                               " FROM evstream.read_after($1::bigint, $2::int, $3::text[]) e";
constexpr int kPaceMs = 5;

CursorLimits LimitsFrom(const core::Config& c) {
  CursorLimits l;
  l.max_queue_bytes = c.max_queue_bytes;
  l.batch_size = c.batch_size;
  l.stall_timeout_ms = static_cast<uint64_t>(c.stall_timeout_ms);
  return l;
}
}  // namespace

template <typename Fn>
void Session::Guarded(const char* where, const std::weak_ptr<Session>& weak, Fn&& fn) {
  core::Guard(where, std::forward<Fn>(fn), [&] {
    if (auto self = weak.lock()) self->conn_->Close();
  });
}

void Session::OnDeliveryFailed() { conn_->Close(); }

Session::Session(StreamService* svc, http::Connection* conn, auth::ChannelSet channels,
                 std::vector<std::string> topics, int batch_ms)
    : svc_(svc), conn_(conn), channels_(std::move(channels)), batch_ms_(batch_ms),
      cursor_(this, LimitsFrom(*svc->d_.config), std::move(topics), svc->d_.metrics), wheel_(&conn->wheel()) {
  svc_->sessions_.insert(this);
  svc_->d_.metrics->sse_clients++;
}

Session::~Session() {
  wheel_->Stop(&expiry_);
  svc_->d_.hub->Remove(this);
  if (svc_->d_.presence && !presence_user_.empty())
    core::Guard("presence leave", [&] { svc_->d_.presence->Leave(presence_user_, channels_.exact); });
  svc_->sessions_.erase(this);
  svc_->d_.metrics->sse_clients--;
}

void Session::JoinPresence(const std::string& user) {
  if (!svc_->d_.presence || user.empty() || !Alive()) return;
  presence_user_ = user;
  svc_->d_.presence->Join(user, channels_.exact);
}

uv_timer_t* Session::LazyTimer(std::optional<core::UvHandle<uv_timer_t>>& t) {
  if (!t) {
    t.emplace();
    if (uv_timer_init(svc_->d_.loop, (*t).get()) == 0) (*t).MarkInitialised();
    (*t)->data = this;
  }
  return (*t).initialised() ? (*t).get() : nullptr;
}

// The expiry is an entry on the server's wheel (never early, at most a tick late); the
// destructor cancels it.
void Session::ExpireAt(int64_t expires_at) {
  if (expires_at <= 0) return;
  double ms = (static_cast<double>(expires_at) - core::NowSeconds()) * 1000.0;
  uint64_t delay = ms <= 0 ? 0 : static_cast<uint64_t>(std::min(ms, 1e12));  // ~31 years at most
  wheel_->Stop(&expiry_);
  expiry_ = wheel_->Start(delay, [this] {
    expiry_ = 0;
    Guarded("stream expiry timer", weak_from_this(), [&] {
      if (Alive()) Reauth();
    });
  });
}

// The token expired: tell the client where to resume (the last position this stream has
// passed, delivered or filtered out; everything up to it is already queued before this frame)
// and close. A client that reconnects with a fresh token and this id misses nothing and
// receives nothing twice. Live events not yet delivered (during a replay) are left to that
// resume.
void Session::Reauth() {
  std::string safe = cursor_.HasPosition() ? std::to_string(cursor_.Position().position) : start_id_;
  nlohmann::ordered_json data = {{"type", "reauth"}, {"reason", "token expired"}};
  data["lastEventId"] = safe.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(safe);
  svc_->d_.metrics->reauths++;
  conn_->Send(std::make_shared<const std::string>(Frame("reauth", core::DumpJson(data), safe)));
  expired_ = true;
  if (pace_timer_ && (*pace_timer_).initialised()) uv_timer_stop((*pace_timer_).get());
  conn_->CloseAfterFlush();
}

void Session::SendFrame(const http::Frame& f) {
  if (Alive()) conn_->Send(f);
}

void Session::Begin(const std::string& last_event_id) {
  if (uv_timer_t* timer = batch_ms_ > 0 ? LazyTimer(timer_) : nullptr) {
    conn_->SetHold(true);
    uv_timer_start(timer, [](uv_timer_t* t) {
      auto* self = static_cast<Session*>(t->data);
      Guarded("stream batch timer", self->weak_from_this(), [&] {
        if (self->Alive()) self->conn_->Flush();
      });
    }, batch_ms_, batch_ms_);
  }
  svc_->d_.hub->Add(this);  // before the replay's first read: nothing can fall in between
  start_id_ = Cursor::StartId(*this, last_event_id);
  cursor_.Begin(last_event_id);
}

void Session::OnEvent(const feed::EventPtr& ev) {
  if (Alive()) cursor_.OnLive(ev);
}

void Session::OnEphemeral(const feed::EphemeralPtr& ev) {
  if (!Alive()) return;
  // Events without an entity are channel-wide (presence, typing): every topic filter passes them.
  if (!ev->entity.empty() && !cursor_.TopicsMatch(ev->entity, ev->id)) return;
  if (conn_->QueuedBytes() >= svc_->d_.config->max_queue_bytes) {
    svc_->d_.metrics->ephemeral_dropped++;
    return;
  }
  svc_->d_.metrics->ephemeral_delivered++;
  conn_->Send(ev->frame);
}

size_t Session::QueuedBytes() const { return conn_->QueuedBytes(); }
uint64_t Session::NowMs() const { return uv_now(svc_->d_.loop); }
bool Session::FeedPositioned() const { return svc_->d_.feed->Positioned(); }
feed::LogKey Session::FeedCursor() const { return svc_->d_.feed->Cursor(); }

void Session::Send(const std::shared_ptr<const std::string>& frame) {
  if (Alive()) conn_->Send(frame);
}

void Session::ReadAnchor(int64_t position) {
  std::weak_ptr<Session> weak = shared_from_this();
  svc_->d_.pool->Query(kAnchorSql, {std::to_string(position)}, [weak](feed::QueryResult& r) {
    Guarded("replay anchor", weak, [&] {
      auto self = weak.lock();
      if (!self || !self->Alive()) return;
      if (!r.ok()) core::LogWarn("replay anchor failed", {{"error", r.error}});
      bool found = r.ok() && r.rows() > 0;
      self->cursor_.OnAnchor(r.ok(), found, found ? r.Uint64(0, 0) : 0);
    });
  }, pool_key, feed::Lane::Replay);
}

void Session::ReadAfter(int64_t position, int limit) {
  feed::Params params = {std::to_string(position), std::to_string(limit), std::nullopt};
  if (!channels_.HasPatterns()) params[2] = feed::TextArray(channels_.exact);
  svc_->d_.metrics->replay_reads++;
  std::weak_ptr<Session> weak = shared_from_this();
  svc_->d_.pool->Query(kReplaySql, std::move(params), [weak](feed::QueryResult& r) {
    Guarded("replay rows", weak, [&] {
      auto self = weak.lock();
      if (!self || !self->Alive()) return;
      std::vector<ReplayRow> rows;
      Cursor::ReadStatus status = Cursor::ReadStatus::kOk;
      if (r.ok()) {
        rows.reserve(r.rows());
        for (int i = 0; i < r.rows(); i++) {
          feed::EventRow row = feed::RowAt(r, i);
          ReplayRow out{{row.tx, row.position}, nullptr};
          if (self->channels_.Matches(row.channel)) out.event = feed::MakeEvent(row);
          rows.push_back(std::move(out));
        }
      } else if (r.sqlstate == "EV006") {
        status = Cursor::ReadStatus::kUnknownPosition;
      } else {
        core::LogWarn("replay failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
        status = Cursor::ReadStatus::kFailed;
      }
      self->cursor_.OnReplayRows(status, rows);
    });
  }, pool_key, feed::Lane::Replay);
}

void Session::WaitForDrain() {
  uv_timer_t* timer = LazyTimer(pace_timer_);
  if (!timer) return;
  uv_timer_start(timer, [](uv_timer_t* t) {
    auto* self = static_cast<Session*>(t->data);
    Guarded("replay pace timer", self->weak_from_this(), [&] {
      if (self->Alive()) self->cursor_.OnDrainTick();
    });
  }, kPaceMs, 0);
}

void Session::DropSlowClient() {
  if (Alive()) conn_->DropSlowClient();
}

void Session::CloseAfterFlush() {
  if (Alive()) conn_->CloseAfterFlush();
}

}  // namespace evstream::sse
