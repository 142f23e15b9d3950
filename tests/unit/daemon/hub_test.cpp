#include <gtest/gtest.h>

#include <stdexcept>

#include "hub/hub.hpp"

using namespace evstream;

namespace {
struct Recorder : hub::Subscriber {
  auth::ChannelSet set;
  std::vector<int64_t> got;
  hub::Hub* hub = nullptr;
  bool remove_self_on_event = false;
  const auth::ChannelSet& Channels() const override { return set; }
  void OnEvent(const feed::EventPtr& ev) override {
    got.push_back(ev->key.position);
    if (remove_self_on_event) hub->Remove(this);
  }
};
feed::EventPtr Ev(int64_t pos, const std::string& channel) {
  auto e = std::make_shared<feed::Event>();
  e->key = {1, pos};
  e->channel = channel;
  e->frame = std::make_shared<const std::string>("x");
  return e;
}
}  // namespace

TEST(Hub, delivers_each_event_only_to_matching_subscribers_and_shares_the_frame) {
  hub::Hub h;
  Recorder a, b, pat;
  a.set.exact = {"project:a"};
  b.set.exact = {"project:b", "user:u"};
  pat.set.prefixes = {"channel:team-"};
  h.Add(&a);
  h.Add(&b);
  h.Add(&pat);
  h.Publish(Ev(1, "project:a"));
  h.Publish(Ev(2, "project:b"));
  h.Publish(Ev(3, "user:u"));
  h.Publish(Ev(4, "channel:team-x"));
  h.Publish(Ev(5, "channel:other"));
  EXPECT_EQ(a.got, (std::vector<int64_t>{1}));
  EXPECT_EQ(b.got, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(pat.got, (std::vector<int64_t>{4}));
  h.Remove(&b);
  h.Publish(Ev(6, "project:b"));
  EXPECT_EQ(b.got.size(), 2u);
  EXPECT_EQ(h.size(), 2u);
}

TEST(Hub, a_subscriber_may_leave_during_publish) {
  hub::Hub h;
  Recorder a, b;
  a.hub = b.hub = &h;
  a.set.exact = b.set.exact = {"c:x"};
  a.remove_self_on_event = true;
  h.Add(&a);
  h.Add(&b);
  h.Publish(Ev(1, "c:x"));
  h.Publish(Ev(2, "c:x"));
  EXPECT_EQ(a.got, (std::vector<int64_t>{1}));
  EXPECT_EQ(b.got, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(h.size(), 1u);
}

namespace {
struct Thrower : hub::Subscriber {
  auth::ChannelSet set;
  int failed = 0;
  const auth::ChannelSet& Channels() const override { return set; }
  void OnEvent(const feed::EventPtr&) override { throw std::runtime_error("subscriber bug"); }
  void OnDeliveryFailed() override { failed++; }
};
}  // namespace

TEST(Hub, a_subscriber_that_throws_is_dropped_alone_and_the_others_still_get_the_event) {
  hub::Hub h;
  Recorder before, after, pat;
  Thrower bad, bad_pattern;
  before.set.exact = after.set.exact = bad.set.exact = {"project:a"};
  pat.set.prefixes = bad_pattern.set.prefixes = {"project:"};
  h.Add(&before);
  h.Add(&bad);
  h.Add(&after);
  h.Add(&bad_pattern);
  h.Add(&pat);
  EXPECT_NO_THROW(h.Publish(Ev(1, "project:a")));
  EXPECT_EQ(before.got, std::vector<int64_t>{1});
  EXPECT_EQ(after.got, std::vector<int64_t>{1});
  EXPECT_EQ(pat.got, std::vector<int64_t>{1});
  EXPECT_EQ(bad.failed, 1);
  EXPECT_EQ(bad_pattern.failed, 1);
}
