// POST /api/publish's way to the database: at most one evstream.publish round trip in flight per
// instance; everything that arrives meanwhile waits in the Coalescer and goes out in the next one
// (chunks of one stream merged, order kept). A first chunk waits up to coalesce_ms for company.
// One statement (evstream._publish_each) publishes a whole batch, each item through
// evstream.publish under the claims of its own token, so the database applies its channel and
// identity rules to every item, and a token stream costs one transaction per round trip instead
// of one per token.
//
// The statement is evstream._publish_batch on the publisher's own connection: it returns each
// row as written (outbox id, payload), and those rows go to this instance's subscribers at once
// (on_rows, into the outbox reader's cursor) instead of being read back on the doorbell. That
// connection runs nothing else, so every evstream_ephemeral doorbell its backend rings is one of
// these commits, and the outbox reader skips reading for it (on_writer tells it the pid). An
// answer lost with the connection asks the reader for a read (on_lost): the rows may have
// committed.
#pragma once
#include <uv.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mailbox.hpp"
#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/pg.hpp"
#include "realtime/coalescer.hpp"
#include "realtime/outbox.hpp"

namespace evstream::realtime {

// The frame object evstream.publish builds (used here for its size):
// {"type","channel","entity","id","data","ephemeral":true,"ephemeralId","createdBy","timestamp"}.
std::string EphemeralPayload(const Publication& p, const std::string& ephemeral_id);
// An ephemeral event must be shorter than 8000 bytes (evstream.publish's limit).
constexpr size_t kMaxPayloadBytes = 7999;
// The JSON array evstream._publish_each takes: [{"claims","channel","type","data","entity","id"}].
std::string PublishItems(const std::vector<Publication>& batch, size_t from, size_t count);

class Publisher {
 public:
  // error == nullptr on success (ephemeral_id is the published event's id).
  using Done = std::function<void(const feed::QueryResult* error, const std::string& ephemeral_id, int chunks)>;
  // conninfo/pg_options: the publisher's own connection (as the pool's).
  Publisher(uv_loop_t* loop, const std::string& conninfo, const std::string& pg_options, core::Metrics* metrics,
            int coalesce_ms);
  ~Publisher() { Close(); }
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  void Start();
  // Callable from any loop once SetHome() names the publisher's own: done runs on the caller's.
  void Publish(Publication p, Done done);
  void SetHome(core::Mailbox* home) { home_ = home; }
  void Close();

  std::function<void(const std::vector<OutboxRow>&)> on_rows;  // committed rows, in id order
  std::function<void(int pid)> on_writer;  // the connection's backend pid (0 while disconnected)
  std::function<void()> on_lost;           // an answer was lost: its rows may have committed

 private:
  void PublishHere(Publication p, Done done);
  void Flush();
  void Send(std::vector<Publication> batch);
  // Sends one statement; answers `cb` with a "database unavailable" error when it cannot.
  void Query(const std::string& items, feed::PgConnection::Callback cb);
  // The rows of a successful answer for `batch` (or of item `from` alone), handed to on_rows.
  bool Rows(const feed::QueryResult& r, const std::vector<Publication>& batch, size_t from, size_t n,
            std::vector<std::string>* ids);
  void FailWaiting(const std::string& why);
  void Finish(const Publication& p, const feed::QueryResult* error, const std::string& id);
  void Recover();

  uv_loop_t* loop_;
  feed::PgConnection conn_;
  core::Metrics* metrics_;
  int coalesce_ms_;
  Coalescer coalescer_;
  bool in_flight_ = false;
  bool closed_ = false;
  uint64_t next_ticket_ = 1;
  std::unordered_map<uint64_t, Done> waiting_;
  core::UvHandle<uv_timer_t> timer_;
  core::Mailbox* home_ = nullptr;  // the publisher's loop (nullptr: one loop)
};

}  // namespace evstream::realtime
