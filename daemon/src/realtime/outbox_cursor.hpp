// Where an outbox reader stands (pure C++, unit-tested): evstream.ephemeral_outbox ids come from
// a sequence, so they are not commit order — a row with a lower id can commit after a higher one
// was read. The cursor keeps the highest id read (`after`) and the ids below it not seen yet
// (gaps), each with the next transaction id at the read that found it. A later read whose
// snapshot xmin (horizon) has passed that value saw every transaction that could have written
// the gap end: if the row is not there it never will be, and the gap is closed. So every row is
// handed out once — none skipped however late it commits, none twice — and memory stays bounded
// (at most max_gaps open gaps; beyond that the oldest are given up and counted).
//
// Own rows: the instance that published a batch learns the rows' ids (and payloads) when its
// statement returns, after the commit, and hands them out at once (AcceptOwn) without waiting
// for a read. The cursor remembers those ids: a later read skips them, they never become gaps,
// and a run of them right above `after` moves `after` on (nobody else can hold an id between
// them). Whichever of the read and the hand-off sees an id first hands it out; the other skips it.
// While the reader is not anchored (its connection was lost, the new tail not yet known), own
// ids are only recorded in that set, `after` and the gaps stay as they are: the tail may have
// been taken before such a row was visible, and Anchor keeps them out of its gaps and skips them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace evstream::realtime {

class OutboxCursor {
 public:
  explicit OutboxCursor(size_t max_gaps = 10000) : max_gaps_(max_gaps) {}

  // Start at `last_id`; `missing` ids below it may still commit (recorded with next_xid).
  void Anchor(int64_t last_id, const std::map<int64_t, uint64_t>& missing, uint64_t next_xid);
  // A row of a read (ascending ids) whose first row said next_xid: true when it is new (deliver
  // it), false when it was already handed out or given up.
  bool Accept(int64_t id, uint64_t next_xid);
  // After a read: gaps whose transaction has ended by `horizon` (the read's snapshot xmin) and
  // that the read covered (all of it when it was not cut by its limit, else ids up to
  // `last_id`) are closed.
  void Finish(uint64_t horizon, bool complete, int64_t last_id);
  // A row this instance wrote, known from its own publish (committed): true when it is new
  // (deliver it now), false when a read already handed it out (or its gap was given up), or when
  // max_gaps own rows already wait above `after`, or own rows are held (see LostOwn): a read
  // will hand this one out.
  bool AcceptOwn(int64_t id);
  // The reader lost its position (its connection): until the next Anchor, ids handed out by
  // AcceptOwn are only recorded, so that the new anchor's tail never makes them gaps or reads.
  void Unanchor();
  // Own rows are held back (AcceptOwn refuses them, a read hands them out in id order) from a lost
  // answer (its rows may have committed, ids unknown) until a complete read sent after it has
  // been handled, and from a refused own row until the watermark reaches it: a stream's own
  // events never overtake each other.
  void LostOwn();
  // A read was sent / its result handled (`complete`: not cut by its limit).
  void BeginRead();
  void EndRead(bool complete);
  bool held() const;

  int64_t after() const { return after_; }
  size_t gap_count() const { return gaps_.size(); }
  // The gaps as a PostgreSQL bigint[] literal ("{4,7}").
  std::string GapsLiteral() const;
  // Every id at or below this was handed out, closed or given up.
  int64_t Watermark() const { return gaps_.empty() ? after_ : gaps_.begin()->first - 1; }
  uint64_t given_up() const { return given_up_; }
  size_t own_count() const { return own_.size(); }

 private:
  void Bound();
  void SkipOwn();  // moves `after` over own ids right above it
  bool Refuse(int64_t id);  // an own row left to the reads: later ones wait for it (false)
  size_t max_gaps_;
  int64_t after_ = 0;
  std::map<int64_t, uint64_t> gaps_;  // id -> next transaction id when first missed
  std::set<int64_t> own_;             // own ids above `after` (or, unanchored, any), handed out
  bool anchored_ = false;
  bool lost_ = false;         // an own answer was lost: own rows wait for a read sent after it
  uint64_t reads_ = 0, lost_at_read_ = 0;
  int64_t refused_upto_ = 0;  // own rows wait until the watermark reaches this refused id
  uint64_t given_up_ = 0;
};

}  // namespace evstream::realtime
