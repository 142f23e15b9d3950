// The outbox reader: evstreamd's one way in for ephemeral events and presence messages. The
// evstream_ephemeral doorbell is heard on the feed's connection (one listening backend per
// instance: PostgreSQL wakes every listener of the database on every NOTIFY), which passes it on
// (OnDoorbell) as a doorbell only (the payload is never read: anyone can NOTIFY anything). Its
// own connection reads evstream.ephemeral_outbox through evstream._ephemeral_read, which only
// evstream's own functions write. One read in flight; doorbells during a read coalesce into one
// more read, and reads start at most every min_read_interval_ms; while gaps are open a short
// timer looks again (a late commit rings its own doorbell too); a slow poll is the safety net.
// The OutboxCursor hands every row out once. It anchors at the end of the outbox only once the
// listener listens (OnListening), and again after its own connection was lost (what was
// published while it was away is missed: ephemeral delivery is at most once); when the listener
// comes back after a loss, it reads on from its cursor. It also prunes the outbox: rows up to the
// watermark it had `retention_ms` ago.
//
// Rows this instance published through POST /api/publish come back from its own publish
// statement (evstream._publish_batch, after the commit) and are handed out at once (HandOwn);
// the cursor keeps them from being handed out twice. The doorbell that statement's commit rings
// comes from the publisher's own backend (NOTIFY's sender pid, set by the server, not a payload):
// it needs no read here, since everything that backend commits is handed out by HandOwn (or,
// when the answer is lost, by the read that Publisher's disconnect asks for). Every other
// instance reads those rows as before.
#pragma once
#include <uv.h>

#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/pg.hpp"
#include "realtime/outbox_cursor.hpp"

namespace evstream::realtime {

struct OutboxOptions {
  std::string conninfo;
  int batch_size = 1000;
  int gap_recheck_ms = 25;  // re-read period while gaps are open
  int poll_ms = 1000;       // safety-net read period without doorbells (0: off)
  int retention_ms = 30000; // rows are pruned this long after this reader passed them
  size_t max_gaps = 10000;
  std::string pg_options;   // libpq options for the outbox's connection (statement_timeout)
  // Reads start at most this often while doorbells keep ringing (a doorbell after a quiet
  // period reads at once): under a stream of small commits one read takes several rows, instead
  // of one read (and its database work) per commit. A backlog (a read cut by batch_size) is read
  // on at once.
  int min_read_interval_ms = 2;
};

// One outbox row as read (typed at this edge; `payload` is JSON text checked by the consumer).
struct OutboxRow {
  enum class Kind { Event, Presence };
  int64_t id = 0;
  Kind kind = Kind::Event;
  std::string channel, type, entity, entity_id, payload;
};

class Outbox {
 public:
  Outbox(uv_loop_t* loop, OutboxOptions opts, core::Metrics* metrics);
  void Start();
  void Close();
  bool Connected() const { return conn_.state() == feed::PgConnection::State::Ready ||
                                  conn_.state() == feed::PgConnection::State::Busy; }
  int BackendPid() const { return conn_.BackendPid(); }
  const OutboxCursor& cursor() const { return cursor_; }

  std::function<void(const OutboxRow&)> on_row;  // each new row, in id order
  std::function<void()> on_ready;                // after every (re)LISTEN and anchor

  // Rows this instance's publisher wrote and saw committed: each one not handed out yet goes to
  // on_row now. A row the cursor cannot take (too many own rows ahead of the reader) is left to
  // a read, which is started.
  void HandOwn(const std::vector<OutboxRow>& rows);
  // An own answer was lost (its rows may have committed): later own rows wait for a read.
  void LostOwn() {
    cursor_.LostOwn();
    ReadLater();
  }
  // The backend pid of the publisher's connection (0: none): its doorbells need no read.
  void SetOwnWriter(int pid) { own_writer_pid_ = pid; }
  // A read soon (e.g. the publisher lost a statement's answer: its rows may have committed).
  void ReadLater() { if (anchored_ && !busy_ && Connected()) ReadSoon(); else doorbell_pending_ = true; }
  // From the listening connection: the doorbell rang (be_pid: its sender's backend); it listens
  // (after every (re)LISTEN); it went away (doorbells are missed until it listens again).
  void OnDoorbell(int be_pid);
  void OnListening();
  void OnListenerLost() { listening_ = false; }

 private:
  void OnConnected();
  void Anchor();
  void Read();
  void ReadSoon();  // Read now, or when min_read_interval_ms has passed since the last one
  void OnRows(feed::QueryResult& r);
  void Ring(int be_pid);
  void Listening();
  void Tick();
  bool Prune();  // true when a prune was sent
  void Recover();  // after an exception (logged): reconnect and re-anchor

  uv_loop_t* loop_;
  OutboxOptions opts_;
  core::Metrics* metrics_;
  feed::PgConnection conn_;
  OutboxCursor cursor_;
  core::UvHandle<uv_timer_t> recheck_timer_;
  core::UvHandle<uv_timer_t> tick_timer_;
  core::UvHandle<uv_timer_t> read_timer_;  // a paced read (ReadSoon)
  bool anchored_ = false;
  bool listening_ = false;  // the listener hears the doorbell (anchoring waits for it)
  bool busy_ = false;
  int own_writer_pid_ = 0;
  int64_t read_after_ = 0;  // `after` of the read in flight
  bool doorbell_pending_ = false;
  bool closed_ = false;
  uint64_t last_read_ms_ = 0;
  std::deque<std::pair<uint64_t, int64_t>> marks_;  // (uv_now, watermark) once a second
  int64_t pruned_upto_ = 0;
  int gap_streak_ = 0;  // consecutive re-reads that left gaps open (slows the re-reads)
};

}  // namespace evstream::realtime
