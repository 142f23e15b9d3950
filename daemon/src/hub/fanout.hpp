// From the feed (and the realtime side) to every event loop: each loop has its own Hub of the
// streams it owns and a FeedView of how far the feed has fanned out to it. The feed reads the log
// once per batch and hands the batch — events serialised once, shared immutably — to every loop:
// its own loop at once, the others through their mailboxes (one task per batch per loop, in
// order with the loop's other feed news). Nothing is read again and nothing re-serialised per loop.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "core/mailbox.hpp"
#include "feed/event.hpp"
#include "hub/hub.hpp"

namespace evstream::hub {

// One loop's view of the feed: what its streams may rely on (everything up to Cursor() has been
// offered to this loop's hub). Read and written on that loop's thread only.
class FeedView {
 public:
  bool Connected() const { return connected_; }
  bool Positioned() const { return positioned_; }
  feed::LogKey Cursor() const { return cursor_; }
  std::function<void()> on_positioned;  // once: the feed found the end of the log

 private:
  friend class Fanout;
  bool connected_ = false;
  bool positioned_ = false;
  feed::LogKey cursor_;
};

class Fanout {
 public:
  // A loop's hub and view; `mailbox` is that loop's, nullptr for the feed's own loop. All
  // loops are added before the feed starts.
  void Add(Hub* hub, FeedView* view, core::Mailbox* mailbox);
  // In log order, from the feed's loop.
  void Events(std::vector<feed::EventPtr> batch);
  void Ephemeral(const feed::EphemeralPtr& ev);
  void Positioned(feed::LogKey at);
  void Connected(bool up);
  // Events (and ephemeral events) handed to the slowest other loop and not delivered there yet.
  // The feed reads no further batch while it passes kMaxBacklog: a loop that stops taking them
  // slows the feed down (as one loop did) instead of piling batches up in its mailbox; a loop
  // that is merely busy for a moment does not hold the others back.
  int Backlog() const;
  static constexpr int kMaxBacklog = 16384;

 private:
  struct Target {
    Hub* hub;
    FeedView* view;
    core::Mailbox* mailbox;
    std::shared_ptr<std::atomic<int>> backlog;  // events posted, not run yet (other loops only)
  };
  // Runs fn(target) on each target's loop.
  template <typename Fn>
  void ForEach(const Fn& fn, int events);
  std::vector<Target> targets_;
};

}  // namespace evstream::hub
