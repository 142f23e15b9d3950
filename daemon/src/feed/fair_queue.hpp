// A bounded queue that is fair between clients: one FIFO per key ("sub:alice", "addr:10.0.0.7"),
// served round-robin, so one client's flood waits behind itself, not in front of everyone else.
// Bounded in total and per key: Push refuses (the caller answers 503 + Retry-After). Pure:
// unit-tested.
#pragma once
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace evstream::feed {

template <typename T>
class FairQueue {
 public:
  FairQueue(size_t max_total, size_t max_per_key) : max_total_(max_total), max_per_key_(max_per_key) {}

  // False when the queue is full, in total or for this key.
  bool Push(const std::string& key, T item) {
    if (size_ >= max_total_) return false;
    auto& q = by_key_[key];
    if (q.size() >= max_per_key_) {
      if (q.empty()) by_key_.erase(key);
      return false;
    }
    if (q.empty()) ring_.push_back(key);
    q.push_back(std::move(item));
    size_++;
    return true;
  }

  // The oldest item of the next key in turn whose key is eligible (all keys when no predicate);
  // nullopt when none is.
  std::optional<T> Pop(const std::function<bool(const std::string&)>& eligible = nullptr) {
    for (size_t i = 0; i < ring_.size(); i++) {
      if (eligible && !eligible(ring_[i])) continue;
      std::string key = std::move(ring_[i]);
      ring_.erase(ring_.begin() + static_cast<std::ptrdiff_t>(i));
      auto it = by_key_.find(key);
      T item = std::move(it->second.front());
      it->second.pop_front();
      size_--;
      if (it->second.empty())
        by_key_.erase(it);
      else
        ring_.push_back(std::move(key));  // its next item waits for every other key's turn
      return item;
    }
    return std::nullopt;
  }

  // Everything, oldest first per key (for shutdown).
  std::vector<T> Drain() {
    std::vector<T> out;
    while (auto item = Pop()) out.push_back(std::move(*item));
    return out;
  }

  size_t Size() const { return size_; }
  bool Empty() const { return size_ == 0; }
  size_t SizeFor(const std::string& key) const {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? 0 : it->second.size();
  }
  size_t Keys() const { return ring_.size(); }

 private:
  size_t max_total_, max_per_key_;
  size_t size_ = 0;
  std::unordered_map<std::string, std::deque<T>> by_key_;
  std::deque<std::string> ring_;  // keys with queued items, in turn order
};

}  // namespace evstream::feed
