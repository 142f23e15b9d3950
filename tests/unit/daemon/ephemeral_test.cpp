// Ephemeral events in the daemon: NOTIFY payload parsing (reserved types dropped, no id: line)
// and the hub's routing of ephemeral events (exact channels, patterns, removal while publishing).
#include <gtest/gtest.h>

#include "feed/event.hpp"
#include "hub/hub.hpp"
#include "realtime/coalescer.hpp"
#include "realtime/publisher.hpp"

using namespace evstream;

namespace {
struct EphemeralRecorder : hub::Subscriber {
  auth::ChannelSet set;
  std::vector<std::string> got;
  hub::Hub* hub = nullptr;
  bool remove_self = false;
  const auth::ChannelSet& Channels() const override { return set; }
  void OnEvent(const feed::EventPtr&) override { got.push_back("stored"); }
  void OnEphemeral(const feed::EphemeralPtr& ev) override {
    got.push_back(ev->type);
    if (remove_self) hub->Remove(this);
  }
};
}  // namespace

TEST(Ephemeral, payload_becomes_a_frame_without_id) {
  auto ev = feed::ParseEphemeral(
      R"({"type":"ai_chat_chunk","channel":"project:p","entity":null,"id":null,"data":{"streamId":"s","text":"hi"},"ephemeral":true})");
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->type, "ai_chat_chunk");
  EXPECT_EQ(ev->channel, "project:p");
  EXPECT_EQ(ev->entity, "");
  EXPECT_EQ(ev->frame->rfind("event: ai_chat_chunk\ndata: {", 0), 0u);
  EXPECT_EQ(ev->frame->find("id:"), std::string::npos);
  EXPECT_EQ(ev->frame->substr(ev->frame->size() - 2), "\n\n");
}

TEST(Ephemeral, malformed_or_reserved_payloads_are_dropped) {
  EXPECT_FALSE(feed::ParseEphemeral("not json"));
  EXPECT_FALSE(feed::ParseEphemeral(R"(["type"])"));
  EXPECT_FALSE(feed::ParseEphemeral(R"({"type":"x"})"));
  for (const char* t : {"reset", "connected", "heartbeat", "overflow", "error", "presence"})
    EXPECT_FALSE(feed::ParseEphemeral(std::string(R"({"type":")") + t + R"(","channel":"project:p"})")) << t;
}

TEST(Ephemeral, hub_routes_by_channel_and_pattern_only_to_on_ephemeral) {
  hub::Hub h;
  EphemeralRecorder exact, pattern, other;
  exact.set.exact = {"project:a"};
  pattern.set.prefixes = {"project:"};
  other.set.exact = {"project:b"};
  exact.hub = &h;
  exact.remove_self = true;  // removal from inside the callback is safe
  h.Add(&exact);
  h.Add(&pattern);
  h.Add(&other);
  h.PublishEphemeral(feed::MakeEphemeral("project:a", "typing", "{}"));
  h.PublishEphemeral(feed::MakeEphemeral("project:a", "typing2", "{}"));
  EXPECT_EQ(exact.got, (std::vector<std::string>{"typing"}));
  EXPECT_EQ(pattern.got, (std::vector<std::string>{"typing", "typing2"}));
  EXPECT_TRUE(other.got.empty());
}

TEST(Ephemeral, payload_has_the_envelope_and_stays_under_the_bound) {
  realtime::Publication p;
  p.channel = "project:p";
  p.type = "note";
  p.created_by = "user:u";
  p.data = {{"quote", "a \"b\"\n"}};
  std::string payload = realtime::EphemeralPayload(p, std::string(36, '0'));
  auto j = nlohmann::json::parse(payload);
  EXPECT_EQ(j["type"], "note");
  EXPECT_TRUE(j["entity"].is_null());
  EXPECT_EQ(j["ephemeral"], true);
  EXPECT_EQ(j["createdBy"], "user:u");
  EXPECT_LE(payload.size(), realtime::Coalescer::PayloadBytesBound(p));
}
