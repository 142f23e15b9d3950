#include "hub/fanout.hpp"

#include <algorithm>

namespace evstream::hub {

void Fanout::Add(Hub* hub, FeedView* view, core::Mailbox* mailbox) {
  targets_.push_back({hub, view, mailbox, std::make_shared<std::atomic<int>>(0)});
}

int Fanout::Backlog() const {
  int most = 0;
  for (const Target& t : targets_)
    if (t.mailbox) most = std::max(most, t.backlog->load(std::memory_order_relaxed));
  return most;
}

// The other loops first: they start on the batch while this one delivers its own share.
template <typename Fn>
void Fanout::ForEach(const Fn& fn, int events) {
  for (const Target& t : targets_) {
    if (!t.mailbox) continue;
    t.backlog->fetch_add(events, std::memory_order_relaxed);
    bool posted = t.mailbox->Post([fn, t, events] {
      fn(t);
      t.backlog->fetch_sub(events, std::memory_order_relaxed);
    });
    if (!posted) t.backlog->fetch_sub(events, std::memory_order_relaxed);  // that loop has closed
  }
  for (const Target& t : targets_)
    if (!t.mailbox) fn(t);
}

void Fanout::Events(std::vector<feed::EventPtr> batch) {
  if (batch.empty()) return;
  auto shared = std::make_shared<const std::vector<feed::EventPtr>>(std::move(batch));
  ForEach([shared](const Target& t) {
    for (const feed::EventPtr& ev : *shared) {
      if (t.view) t.view->cursor_ = ev->key;
      t.hub->Publish(ev);
    }
  }, static_cast<int>(shared->size()));
}

void Fanout::Ephemeral(const feed::EphemeralPtr& ev) {
  ForEach([ev](const Target& t) { t.hub->PublishEphemeral(ev); }, 1);
}

void Fanout::Positioned(feed::LogKey at) {
  ForEach([at](const Target& t) {
    if (!t.view || t.view->positioned_) return;
    t.view->cursor_ = at;
    t.view->positioned_ = true;
    if (t.view->on_positioned) t.view->on_positioned();
  }, 0);
}

void Fanout::Connected(bool up) {
  ForEach([up](const Target& t) {
    if (t.view) t.view->connected_ = up;
  }, 0);
}

}  // namespace evstream::hub
