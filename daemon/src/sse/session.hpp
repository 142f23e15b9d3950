// One SSE subscriber: its channels and topics, and the libuv/libpq side of its position in the
// log. The position logic itself (replay, seam, reset, live, catching up) is the pure
// sse::Cursor; the Session forwards hub events, query results and timer ticks to it and carries
// out what it asks (CursorIo).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/claims.hpp"
#include "core/uv_handle.hpp"
#include "feed/event.hpp"
#include "feed/pg.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "sse/cursor.hpp"
#include "sse/stream.hpp"

namespace evstream::sse {

class Session : public hub::Subscriber, public CursorIo, public std::enable_shared_from_this<Session> {
 public:
  Session(StreamService* svc, http::Connection* conn, auth::ChannelSet channels,
          std::vector<std::string> topics, int batch_ms);
  ~Session() override;
  const auth::ChannelSet& Channels() const override { return channels_; }
  void OnEvent(const feed::EventPtr& ev) override;
  // Ephemeral frames go out at once (no id, no cursor); a client over the queue limit misses
  // them: at most once, no replay.
  void OnEphemeral(const feed::EphemeralPtr& ev) override;
  void OnDeliveryFailed() override;

  // Subscribes, then starts from the client's Last-Event-ID ("" = live from now).
  void Begin(const std::string& last_event_id);
  void SendFrame(const http::Frame& f);
  // The pool's fairness key for this stream's replay reads (token sub, else address).
  std::string pool_key;
  // Counts this stream as `user` being present on its exact channels (until it closes).
  void JoinPresence(const std::string& user);
  // The feed found the end of the log.
  void OnFeedPositioned() { if (Alive()) cursor_.OnFeedPositioned(); }

  // The token stops being valid at `expires_at` (Unix seconds; 0 = never): then the stream
  // ends with `event: reauth` carrying the last safe id, and the connection closes.
  void ExpireAt(int64_t expires_at);

  // CursorIo
  size_t QueuedBytes() const override;
  uint64_t NowMs() const override;
  bool FeedPositioned() const override;
  feed::LogKey FeedCursor() const override;
  void Send(const std::shared_ptr<const std::string>& frame) override;
  void ReadAnchor(int64_t position) override;
  void ReadAfter(int64_t position, int limit) override;
  void WaitForDrain() override;
  void DropSlowClient() override;
  void CloseAfterFlush() override;

 private:
  void Reauth();
  // A timer of this session, initialised on first use; nullptr when libuv refuses one.
  uv_timer_t* LazyTimer(std::optional<core::UvHandle<uv_timer_t>>& t);
  bool Alive() const { return !expired_ && !conn_->closing(); }
  // A callback of this session (timer, replay query) inside the exception boundary: when it
  // throws, only this session's connection closes (the client resumes by Last-Event-ID).
  template <typename Fn>
  static void Guarded(const char* where, const std::weak_ptr<Session>& weak, Fn&& fn);

  StreamService* svc_;
  http::Connection* conn_;  // owns this session (attachment): always valid while we exist
  auth::ChannelSet channels_;
  int batch_ms_;
  Cursor cursor_;
  // Created on first use only (most streams never batch nor pace): an idle stream holds no
  // libuv timer of its own; its token expiry is an entry on the server's timer wheel.
  std::optional<core::UvHandle<uv_timer_t>> timer_;       // batch_ms flushes
  std::optional<core::UvHandle<uv_timer_t>> pace_timer_;  // replay pacing (WaitForDrain)
  std::string presence_user_;
  core::LoopWheel* wheel_;
  core::TimerWheel::Id expiry_ = 0;
  bool expired_ = false;  // reauth sent: nothing more goes out
  std::string start_id_;  // the connected frame's id: safe until the cursor has a position
};

}  // namespace evstream::sse
