// The live feed: one LISTEN connection that also reads the log. Doorbells (NOTIFY evstream)
// trigger a gap-free read_after from the last position fanned out; doorbells during a read
// coalesce into one more read; while committed events are held back by an older open
// transaction, a short timer re-reads. On reconnect it re-LISTENs and catches up from its cursor.
#pragma once
#include <uv.h>

#include <functional>
#include <string>

#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/event.hpp"
#include "feed/pg.hpp"
#include "hub/fanout.hpp"

namespace evstream::feed {

// The feed LISTENs to the log's doorbell ("evstream") and, for the outbox reader, to the
// ephemeral doorbell ("evstream_ephemeral"): one listening backend per instance (PostgreSQL wakes
// every listening backend of the database on every NOTIFY, whatever its channels). A NOTIFY is a
// wake-up, never data: its payload is not read, and anyone may ring (the worst a forged doorbell
// does is one more read). Ephemeral events and presence come through the outbox
// (realtime/outbox.hpp), which gets the ephemeral doorbells from here.
constexpr const char* kDoorbellChannel = "evstream";
constexpr const char* kEphemeralDoorbellChannel = "evstream_ephemeral";

struct FeedOptions {
  std::string conninfo;
  int batch_size = 1000;
  int held_back_ms = 25;
  int poll_ms = 1000;  // safety-net read period without doorbells (0: off)
  std::string pg_options;  // libpq options for the feed's connection (statement_timeout)
};

// Converts row `row` of a result selected with kEventColumns.
EventRow RowAt(const QueryResult& r, int row);

class Feed {
 public:
  // Batches go to every loop through `fanout` (its views follow the feed there).
  Feed(uv_loop_t* loop, FeedOptions opts, hub::Fanout* fanout, core::Metrics* metrics);
  void Start();
  void Close();
  bool Connected() const { return conn_.state() == PgConnection::State::Ready ||
                                  conn_.state() == PgConnection::State::Busy; }
  // Where the feed stands is each loop's hub::FeedView (fanout): streams and /healthz read that.
  int BackendPid() const { return conn_.BackendPid(); }

  std::function<void()> on_listening;   // after every (re)LISTEN (both channels)
  // The ephemeral doorbell rang (be_pid: the sender's backend, from the server); and the
  // connection that listens for it went away (doorbells are missed until on_listening).
  std::function<void(int be_pid)> on_ephemeral_doorbell;
  std::function<void()> on_listener_lost;
  bool Listening() const { return listening_; }

 private:
  void OnConnected();
  void ListenDoorbell();
  void ListenEphemeral();
  void ListenFailed(const QueryResult& r);
  void FindTail();
  void Read();
  void ReadLater(uint64_t ms);
  void OnRows(QueryResult& r);
  void CheckHeldBack();
  bool RecordHolder(const QueryResult* holder);  // true: events are held back
  void AfterHeldBackCheck(bool held_back);
  void OnDoorbell();
  template <typename Fn>
  auto Guarded(const char* where, Fn fn);

  uv_loop_t* loop_;
  FeedOptions opts_;
  hub::Fanout* fanout_;
  core::Metrics* metrics_;
  PgConnection conn_;
  core::UvHandle<uv_timer_t> held_back_timer_;
  core::UvHandle<uv_timer_t> poll_timer_;
  // The next read of a busy feed: after this loop turn, or after other loops took their batches.
  core::UvHandle<uv_timer_t> next_read_timer_;
  static constexpr int kBacklogWaitMs = 1;
  static constexpr int kLingerMs = 1;  // before the next read, while doorbells ring during reads
  static constexpr int kGraceReads = 3;
  int grace_reads_ = 0;
  int held_back_streak_ = 0;  // consecutive checks that found events held back
  LogKey cursor_;
  bool positioned_ = false;
  bool busy_ = false;           // a read or held-back check is in flight, or the next read waits
  bool doorbell_pending_ = false;
  bool ever_connected_ = false;
  bool listening_ = false;  // both LISTENs done on the current connection
};

}  // namespace evstream::feed
