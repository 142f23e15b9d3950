#include "hub/hub.hpp"

#include <algorithm>

#include "core/guard.hpp"

namespace evstream::hub {

void Hub::Add(Subscriber* s) {
  const auto& ch = s->Channels();
  if (ch.HasPatterns()) {
    pattern_subs_.push_back(s);
  } else {
    for (const auto& c : ch.exact) by_channel_[c].push_back(s);
  }
  count_++;
}

// During Publish the slot is nulled and compacted afterwards so iteration stays valid.
void Hub::Remove(Subscriber* s) {
  auto erase = [&](std::vector<Subscriber*>& v) {
    auto it = std::find(v.begin(), v.end(), s);
    if (it == v.end()) return false;
    if (publishing_) {
      *it = nullptr;
      dirty_ = true;
    } else {
      v.erase(it);
    }
    return true;
  };
  bool found = false;
  const auto& ch = s->Channels();
  if (ch.HasPatterns()) {
    found = erase(pattern_subs_);
  } else {
    for (const auto& c : ch.exact) {
      auto it = by_channel_.find(c);
      if (it == by_channel_.end()) continue;
      found = erase(it->second) || found;
      if (it->second.empty() && !publishing_) by_channel_.erase(it);
    }
  }
  if (found) count_--;
}

// Each subscriber's delivery runs inside the exception boundary: one that throws is dropped
// alone (its slot is nulled if it removed itself meanwhile) and the others still get the event.
template <typename Fn>
void Hub::ForChannel(const std::string& channel, Fn fn) {
  bool outer = !publishing_;  // presence events may be published from inside a callback
  publishing_ = true;
  auto deliver = [&](std::vector<Subscriber*>& subs, size_t i) {
    core::Guard("hub delivery", [&] { fn(subs[i]); }, [&] {
      if (subs[i]) subs[i]->OnDeliveryFailed();
    });
  };
  if (auto it = by_channel_.find(channel); it != by_channel_.end()) {
    auto& subs = it->second;
    for (size_t i = 0; i < subs.size(); i++)
      if (subs[i]) deliver(subs, i);
  }
  for (size_t i = 0; i < pattern_subs_.size(); i++) {
    Subscriber* s = pattern_subs_[i];
    if (s && s->Channels().Matches(channel)) deliver(pattern_subs_, i);
  }
  if (!outer) return;
  publishing_ = false;
  if (dirty_) Compact();
}

void Hub::Publish(const feed::EventPtr& ev) {
  ForChannel(ev->channel, [&](Subscriber* s) { s->OnEvent(ev); });
}

void Hub::PublishEphemeral(const feed::EphemeralPtr& ev) {
  ForChannel(ev->channel, [&](Subscriber* s) { s->OnEphemeral(ev); });
}

void Hub::Compact() {
  dirty_ = false;
  auto strip = [](std::vector<Subscriber*>& v) { v.erase(std::remove(v.begin(), v.end(), nullptr), v.end()); };
  strip(pattern_subs_);
  for (auto it = by_channel_.begin(); it != by_channel_.end();) {
    strip(it->second);
    it = it->second.empty() ? by_channel_.erase(it) : std::next(it);
  }
}

}  // namespace evstream::hub
