#include "realtime/outbox_cursor.hpp"

#include <algorithm>

namespace evstream::realtime {

void OutboxCursor::Anchor(int64_t last_id, const std::map<int64_t, uint64_t>& missing, uint64_t next_xid) {
  after_ = last_id;
  anchored_ = true;
  gaps_.clear();
  // Own rows were handed out already: never a gap (the tail may have looked before their commit).
  for (const auto& [id, nx] : missing)
    if (id <= last_id && id > 0 && !own_.count(id)) gaps_[id] = nx ? nx : next_xid;
  own_.erase(own_.begin(), own_.upper_bound(last_id));
  Bound();
  SkipOwn();
}

bool OutboxCursor::Accept(int64_t id, uint64_t next_xid) {
  if (id <= after_) return gaps_.erase(id) > 0;
  // Ids between the last one read and this one: not committed yet, or never will be — unless
  // they are own rows (handed out already). Only the highest max_gaps can be kept; a jump that
  // large gives up the rest at once.
  int64_t from = after_ + 1;
  auto own_end = own_.lower_bound(id);
  if (id - from > static_cast<int64_t>(max_gaps_)) {
    given_up_ += static_cast<uint64_t>(id - from - static_cast<int64_t>(max_gaps_));
    from = id - static_cast<int64_t>(max_gaps_);
  }
  auto own_it = own_.lower_bound(from);
  for (int64_t g = from; g < id; g++) {
    if (own_it != own_end && *own_it == g) {
      ++own_it;
      continue;
    }
    gaps_.emplace(g, next_xid);
  }
  own_.erase(own_.begin(), own_end);
  bool fresh = own_.erase(id) == 0;
  after_ = id;
  Bound();
  SkipOwn();
  return fresh;
}

bool OutboxCursor::AcceptOwn(int64_t id) {
  if (own_.count(id)) return false;
  // Earlier own rows (a lost answer's, refused ones) are left to the reads, which hand rows out in
  // id order: this one follows them there. Own batches run one at a time, so a later answer's ids
  // are all above an earlier batch's.
  if (held()) return id <= after_ && gaps_.count(id) == 0 ? false : Refuse(id);
  if (!anchored_) {
    // The next anchor's tail may list this id missing or end below it: only record it (own_ is
    // what Anchor filters `missing` through and skips above `last_id`), move nothing.
    if (id <= after_ && gaps_.count(id) == 0) return false;  // handed out or given up already
    if (own_.size() >= max_gaps_) return Refuse(id);
    gaps_.erase(id);
    own_.insert(id);
    return true;
  }
  if (id <= after_) return gaps_.erase(id) > 0;  // a gap: the read has not had it yet
  if (id == after_ + 1) {
    after_ = id;
    SkipOwn();
    return true;
  }
  if (own_.size() >= max_gaps_) return Refuse(id);
  own_.insert(id);
  return true;
}

void OutboxCursor::Unanchor() { anchored_ = false; }

void OutboxCursor::LostOwn() {
  lost_ = true;
  lost_at_read_ = reads_;  // a read already sent may have looked before those rows committed
}

void OutboxCursor::BeginRead() { reads_++; }

// A complete read sent after the loss saw every row the lost batch committed (the answer comes
// after the commit) and handed them out, in id order.
void OutboxCursor::EndRead(bool complete) {
  if (lost_ && complete && reads_ > lost_at_read_) lost_ = false;
}

bool OutboxCursor::held() const { return lost_ || Watermark() < refused_upto_; }

bool OutboxCursor::Refuse(int64_t id) {
  refused_upto_ = std::max(refused_upto_, id);
  return false;
}

void OutboxCursor::SkipOwn() {
  while (!own_.empty() && *own_.begin() <= after_ + 1) {
    if (*own_.begin() == after_ + 1) after_++;
    own_.erase(own_.begin());
  }
}

void OutboxCursor::Finish(uint64_t horizon, bool complete, int64_t last_id) {
  for (auto it = gaps_.begin(); it != gaps_.end();) {
    if (!complete && it->first > last_id) break;
    if (it->second <= horizon)
      it = gaps_.erase(it);
    else
      ++it;
  }
}

void OutboxCursor::Bound() {
  while (gaps_.size() > max_gaps_) {
    gaps_.erase(gaps_.begin());
    given_up_++;
  }
}

std::string OutboxCursor::GapsLiteral() const {
  std::string s = "{";
  for (const auto& [id, nx] : gaps_) {
    if (s.size() > 1) s += ',';
    s += std::to_string(id);
  }
  s += '}';
  return s;
}

}  // namespace evstream::realtime
