// A stream's position in the log, as a pure state machine (no libuv, no libpq): replay from a
// Last-Event-ID, the seam between replay and live, reset on an unknown position, live delivery,
// and catching up from the log when a client falls behind. The Session drives it: it forwards
// hub events, query results and timer ticks, and carries out what the machine asks through
// CursorIo (send a frame, read the log, wait for the client to drain, drop it).
//
// The promise: every event of the stream's channels (and topics) that sorts after the client's
// position in the gap-free order (tx, position) is sent exactly once, in that order; every id the
// stream sends is a safe position to resume from.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/metrics.hpp"
#include "feed/event.hpp"

namespace evstream::sse {

// What the machine needs from the world (implemented by Session; by a fake in unit tests).
class CursorIo {
 public:
  virtual ~CursorIo() = default;
  virtual size_t QueuedBytes() const = 0;  // bytes queued to the client, not yet written
  virtual uint64_t NowMs() const = 0;      // a monotonic clock
  virtual bool FeedPositioned() const = 0;  // the feed knows where the log ends…
  virtual feed::LogKey FeedCursor() const = 0;  // …and has fanned out everything up to here
  virtual void Send(const std::shared_ptr<const std::string>& frame) = 0;
  // Queries; each answers later through Cursor::OnAnchor / Cursor::OnReplayRows.
  virtual void ReadAnchor(int64_t position) = 0;           // the tx of that position
  virtual void ReadAfter(int64_t position, int limit) = 0;  // read_after on the stream's channels
  virtual void WaitForDrain() = 0;     // call Cursor::OnDrainTick a little later
  virtual void DropSlowClient() = 0;   // event: overflow, then close
  virtual void CloseAfterFlush() = 0;  // a query failed: close; the client retries
};

struct CursorLimits {
  size_t max_queue_bytes = 1 << 20;
  int batch_size = 1000;
  uint64_t stall_timeout_ms = 10000;
};

// One row of a replay read: its key, and the event when it is on the stream's channels (rows of
// other channels, read through a pattern grant, only move the cursor).
struct ReplayRow {
  feed::LogKey key;
  feed::EventPtr event;
};

class Cursor {
 public:
  enum class State {
    kIdle,       // before Begin
    kAnchoring,  // looking up the tx of the client's Last-Event-ID
    kReading,    // a replay read is in flight
    kDraining,   // waiting for the client to take what was queued before reading more
    kLive,       // live events go straight out
    kDone,       // closed or dropped: nothing more happens
  };

  Cursor(CursorIo* io, CursorLimits limits, std::vector<std::string> topics, core::Metrics* metrics);

  // The `connected` frame's id for a stream opened with this Last-Event-ID, sent before Begin:
  // the client's own position when it resumes, else the feed's (safe: see SafeId); "" when
  // there is none (not a position: the reset frame follows; the feed not positioned yet).
  static std::string StartId(const CursorIo& io, const std::string& last_event_id);
  // Starts the stream for a Last-Event-ID header value ("" = live from now; digits = resume after
  // that position; anything else = reset). The caller subscribes to the hub first: no event can
  // fall in between.
  void Begin(const std::string& last_event_id);

  void OnLive(const feed::EventPtr& ev);  // an event fanned out by the feed
  // The anchor query: ok=false on failure; found=false when the position is not in the log.
  void OnAnchor(bool ok, bool found, uint64_t tx);
  enum class ReadStatus { kOk, kUnknownPosition, kFailed };
  void OnReplayRows(ReadStatus status, const std::vector<ReplayRow>& rows);
  void OnDrainTick();
  // The feed found the end of the log: a live stream without a position takes this one.
  void OnFeedPositioned();

  bool TopicsMatch(const std::string& entity, const std::string& id) const;
  State state() const { return state_; }
  bool HasPosition() const { return has_cursor_; }
  feed::LogKey Position() const { return cursor_; }
  size_t PendingCount() const { return pending_.size(); }

  // A position the client may resume from: the feed's read cursor ("0" = from the start of an
  // empty log); "" while the feed is not positioned.
  static std::string SafeId(const CursorIo& io);
  // Parses a Last-Event-ID: digits only, at most 18; -1 when it is not a position.
  static int64_t ParsePosition(const std::string& s);

 private:
  void Deliver(const feed::EventPtr& ev);
  void ReadBatch();
  void ReadWhenDrained();
  void Reset(const std::string& reason);
  void GoLive();
  void Finish() { state_ = State::kDone; pending_.clear(); }

  CursorIo* io_;
  CursorLimits limits_;
  std::vector<std::string> topics_;
  core::Metrics* metrics_;
  State state_ = State::kIdle;
  bool has_cursor_ = false;
  feed::LogKey cursor_;          // last event considered (delivered or filtered out)
  std::string last_event_id_;    // as the client sent it (for the reset frame)
  int64_t resume_from_ = -1;
  std::vector<feed::EventPtr> pending_;  // live events that arrived during a replay round
  size_t pending_bytes_ = 0;
  bool pending_incomplete_ = false;      // pending_ overflowed: the log must fill the gap
  int read_limit_ = 0;
  size_t avg_frame_bytes_ = 512;         // running average, sizes replay reads
  uint64_t waiting_since_ = 0;           // when we began waiting for the client to drain
  bool waiting_ = false;
};

}  // namespace evstream::sse
