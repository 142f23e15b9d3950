#include "realtime/outbox_cursor.hpp"

namespace evstream::realtime {

void OutboxCursor::Anchor(int64_t last_id, const std::map<int64_t, uint64_t>& missing, uint64_t next_xid) {
  after_ = last_id;
  gaps_.clear();
  for (const auto& [id, nx] : missing)
    if (id <= last_id && id > 0) gaps_[id] = nx ? nx : next_xid;
  Bound();
}

bool OutboxCursor::Accept(int64_t id, uint64_t next_xid) {
  if (id <= after_) return gaps_.erase(id) > 0;
  // Ids between the last one read and this one: not committed yet, or never will be. Only the
  // highest max_gaps can be kept; a jump that large gives up the rest at once.
  int64_t from = after_ + 1;
  if (id - from > static_cast<int64_t>(max_gaps_)) {
    given_up_ += static_cast<uint64_t>(id - from - static_cast<int64_t>(max_gaps_));
    from = id - static_cast<int64_t>(max_gaps_);
  }
  for (int64_t g = from; g < id; g++) gaps_.emplace(g, next_xid);
  after_ = id;
  Bound();
  return true;
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
