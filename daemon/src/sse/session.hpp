// One SSE subscriber: its channels and topics, its position in the log, replay then live.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "auth/claims.hpp"
#include "core/uv_handle.hpp"
#include "feed/event.hpp"
#include "feed/pg.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "sse/stream.hpp"

namespace evstream::sse {

class Session : public hub::Subscriber, public std::enable_shared_from_this<Session> {
 public:
  Session(StreamService* svc, http::Connection* conn, auth::ChannelSet channels,
          std::vector<std::string> topics, int batch_ms);
  ~Session() override;
  const auth::ChannelSet& Channels() const override { return channels_; }
  void OnEvent(const feed::EventPtr& ev) override;
  // Ephemeral frames go out at once (no id, no cursor); a client over the queue limit misses
  // them: at most once, no replay.
  void OnEphemeral(const feed::EphemeralPtr& ev) override;

  // Subscribes; with resume_from >= 0 replays everything after that position first.
  void Begin(int64_t resume_from);
  void SendFrame(const http::Frame& f);
  // Counts this stream as `user` being present on its exact channels (until it closes).
  void JoinPresence(const std::string& user);

 private:
  void Deliver(const feed::EventPtr& ev);
  void ReplayAnchor();
  void ReplayBatch();
  void ReplayWhenDrained();
  void OnReplayRows(feed::QueryResult& r);
  void Reset(const std::string& reason);
  void GoLive();
  bool Alive() const { return !conn_->closing(); }

  StreamService* svc_;
  http::Connection* conn_;  // owns this session (attachment): always valid while we exist
  auth::ChannelSet channels_;
  std::vector<std::string> topics_;
  int batch_ms_;
  bool live_ = false;
  bool has_cursor_ = false;
  feed::LogKey cursor_;  // last event considered (delivered or filtered out)
  int64_t resume_from_ = -1;
  std::vector<feed::EventPtr> pending_;  // live events that arrived during the replay
  size_t pending_bytes_ = 0;
  bool pending_incomplete_ = false;
  size_t avg_frame_bytes_ = 512;         // running average, sizes replay reads
  int replay_limit_ = 0;      // pending_ overflowed: the log must fill the gap
  uint64_t waiting_since_ = 0;           // loop time when we began waiting for the client to drain
  core::UvHandle<uv_timer_t> timer_;     // batch_ms flushes, replay pacing
  core::UvHandle<uv_timer_t> pace_timer_;
  std::string presence_user_;
};

}  // namespace evstream::sse
