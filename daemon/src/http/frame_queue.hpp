// A connection's outbound frames: a vector with a read index instead of a std::deque (whose
// default constructor already allocates a map and a 512-byte block per connection). Frames are
// shared immutable strings: queueing one copies a pointer, never the bytes. Once the queue
// empties, it starts again at the front of its buffer; the buffer keeps its capacity (no
// allocation per delivery), except past kShrinkAbove where an emptied queue gives it back.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace evstream::http {

using Frame = std::shared_ptr<const std::string>;

class FrameQueue {
 public:
  static constexpr size_t kShrinkAbove = 1024;  // frames of capacity kept by an empty queue

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  size_t capacity() const { return items_.capacity(); }
  const Frame& front() const { return items_[head_]; }
  Frame& front() { return items_[head_]; }
  void push_back(Frame f) {
    // Reuse the consumed front before growing: move the live frames down.
    if (head_ > 0 && items_.size() == items_.capacity()) Compact();
    items_.push_back(std::move(f));
  }
  void pop_front() {
    items_[head_++].reset();
    if (head_ == items_.size()) Reset();
  }
  void clear() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > kShrinkAbove) std::vector<Frame>().swap(items_);
  }

 private:
  void Reset() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > kShrinkAbove) std::vector<Frame>().swap(items_);
  }
  void Compact() {
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  std::vector<Frame> items_;
  size_t head_ = 0;
};

}  // namespace evstream::http
