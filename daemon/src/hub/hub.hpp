// Fan-out: each event, serialised once by the feed, is offered to the subscribers that can
// match it. Subscribers to exact channels are indexed by channel; subscribers with patterns
// are checked one by one.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/claims.hpp"
#include "feed/event.hpp"

namespace evstream::hub {

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual const auth::ChannelSet& Channels() const = 0;
  // Called for every published event whose channel matches.
  virtual void OnEvent(const feed::EventPtr& ev) = 0;
  // Called for every ephemeral event whose channel matches (at most once, never replayed).
  virtual void OnEphemeral(const feed::EphemeralPtr& ev) {}
  // OnEvent or OnEphemeral threw (already logged): drop this subscriber only (an SSE session
  // closes its connection; the client resumes by Last-Event-ID). The others still get the event.
  virtual void OnDeliveryFailed() {}
};

class Hub {
 public:
  void Add(Subscriber* s);
  // Safe to call at any time, including from inside OnEvent.
  void Remove(Subscriber* s);
  void Publish(const feed::EventPtr& ev);
  void PublishEphemeral(const feed::EphemeralPtr& ev);
  size_t size() const { return count_; }

 private:
  void Compact();
  template <typename Fn>
  void ForChannel(const std::string& channel, Fn fn);
  std::unordered_map<std::string, std::vector<Subscriber*>> by_channel_;
  std::vector<Subscriber*> pattern_subs_;
  size_t count_ = 0;
  bool publishing_ = false;
  bool dirty_ = false;
};

}  // namespace evstream::hub
