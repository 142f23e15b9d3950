#include "sse/stream.hpp"

#include <unistd.h>

#include <cstdlib>
#include <random>

#include <nlohmann/json.hpp>

#include "auth/request_auth.hpp"
#include "core/guard.hpp"
#include "core/json_out.hpp"
#include "core/log.hpp"
#include "sse/frame.hpp"
#include "sse/session.hpp"

namespace evstream::sse {
namespace {
bool ParseNonNegative(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = std::strtoll(s.c_str(), nullptr, 10);
  return true;
}
}  // namespace

StreamService::StreamService(StreamDeps deps) : d_(deps) {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", rd());
  connection_prefix_ = buf;
  if (uv_timer_init(d_.loop, heartbeat_.get()) == 0) heartbeat_.MarkInitialised();
  heartbeat_->data = this;
}

void StreamService::Start() {
  d_.feed->on_positioned = [this] { OnFeedPositioned(); };
  uint64_t ms = static_cast<uint64_t>(d_.config->heartbeat_seconds) * 1000;
  uv_timer_start(heartbeat_.get(), [](uv_timer_t* t) {
    core::Guard("heartbeat", [&] { static_cast<StreamService*>(t->data)->Heartbeat(); });
  }, ms, ms);
}

// Streams opened before the feed knew where the log ends get their starting position now (an
// id-only frame: it moves the client's Last-Event-ID and dispatches no event).
void StreamService::OnFeedPositioned() {
  std::vector<Session*> all(sessions_.begin(), sessions_.end());
  for (Session* s : all)
    if (sessions_.count(s)) s->OnFeedPositioned();
}

void StreamService::Close() {
  if (heartbeat_.initialised()) uv_timer_stop(heartbeat_.get());
}

// One frame, shared by every stream.
void StreamService::Heartbeat() {
  nlohmann::ordered_json data = {{"type", "heartbeat"}, {"timestamp", core::IsoTime(core::NowSeconds())}};
  auto frame = std::make_shared<const std::string>(Frame("heartbeat", core::DumpJson(data)));
  std::vector<Session*> all(sessions_.begin(), sessions_.end());
  for (Session* s : all)
    if (sessions_.count(s)) s->SendFrame(frame);
}

void StreamService::Handle(const http::ConnectionPtr& conn, http::Request& req,
                           const http::Headers& extra_headers, const auth::AuthResult& a,
                           auth::ChannelSet channels) {
  auto fail = [&](http::Response r) {
    for (const auto& h : extra_headers) r.headers.push_back(h);
    conn->Respond(r);
  };
  if (channels.exact.empty() && channels.prefixes.empty()) {
    d_.metrics->forbidden++;
    fail(http::JsonError(403, "forbidden", "the token grants no channel"));
    return;
  }
  std::vector<std::string> topics = req.QueryAll("topic");
  int64_t batch_ms = 0;
  if (auto b = req.QueryOne("batch_ms")) {
    if (!ParseNonNegative(*b, &batch_ms) || batch_ms > d_.config->max_batch_ms) {
      fail(http::JsonError(400, "bad_request",
                           "batch_ms must be an integer from 0 to " + std::to_string(d_.config->max_batch_ms)));
      return;
    }
  }
  std::string last_id;
  if (const std::string* h = req.Header("last-event-id"); h && !h->empty())
    last_id = *h;
  else if (auto q = req.QueryOne("lastEventId"); q && !q->empty())
    last_id = *q;

  std::string head =
      "HTTP/1.1 200 OK\r\n"
      "Content-Type: text/event-stream; charset=utf-8\r\n"
      "Cache-Control: no-cache, no-store, no-transform\r\n"
      "X-Accel-Buffering: no\r\n";
  for (const auto& [k, v] : extra_headers) head += k + ": " + v + "\r\n";
  head += "\r\n";
  conn->StartStream(head);

  auto session = std::make_shared<Session>(this, conn.get(), std::move(channels), std::move(topics),
                                           static_cast<int>(batch_ms));
  session->pool_key = a.principal.sub.empty() ? "addr:" + conn->address() : "sub:" + a.principal.sub;
  conn->attachment = session;
  std::string connection_id = connection_prefix_ + "-" + std::to_string(next_session_++);
  nlohmann::ordered_json hello = {{"type", "connected"}, {"connectionId", connection_id},
                                  {"channels", session->Channels().Names()}};
  // The frame's id is where this stream starts (Cursor::StartId): a client that disconnects
  // before its first event resumes from it without loss.
  std::string retry = RetryHint(d_.config->retry_ms);
  conn->Send(std::make_shared<const std::string>(
      retry.substr(0, retry.size() - 1) +
      Frame("connected", core::DumpJson(hello),
            Cursor::StartId(*session, last_id))));
  conn->SetOverflowFrame(std::make_shared<const std::string>(Frame(
      "overflow", core::DumpJson(nlohmann::ordered_json(
                      {{"type", "overflow"}, {"reason", "client too slow; reconnect with Last-Event-ID to resume"}})))));
  session->ExpireAt(a.expires_at);
  core::LogDebug("stream opened", {{"conn", conn->id()}, {"connectionId", connection_id},
                                   {"resume", !last_id.empty()}});
  session->Begin(last_id);
  session->JoinPresence(a.principal.sub);
  if (batch_ms > 0) conn->Flush();
}

}  // namespace evstream::sse
