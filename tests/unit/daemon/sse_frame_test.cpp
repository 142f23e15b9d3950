#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "feed/event.hpp"
#include "sse/frame.hpp"

using evstream::sse::Frame;

TEST(SseFrame, single_line_with_id_and_event) {
  EXPECT_EQ(Frame("document.created", R"({"a":1})", "42"),
            "id: 42\nevent: document.created\ndata: {\"a\":1}\n\n");
}

TEST(SseFrame, multi_line_data_becomes_one_data_field_per_line) {
  EXPECT_EQ(Frame("m", "one\ntwo\r\nthree\rfour"),
            "event: m\ndata: one\ndata: two\ndata: three\ndata: four\n\n");
  EXPECT_EQ(Frame("", "x\n"), "data: x\ndata: \n\n");
  EXPECT_EQ(Frame("", ""), "data: \n\n");
}

TEST(SseFrame, newlines_in_event_or_id_cannot_end_the_frame) {
  EXPECT_EQ(Frame("evil\n\ndata: injected", "{}", "1\r\n2"),
            "id: 1  2\nevent: evil  data: injected\ndata: {}\n\n");
}

TEST(SseFrame, unicode_passes_through_untouched) {
  std::string text = "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80";  // héllo ✓ 😀
  EXPECT_EQ(Frame("u", text), "event: u\ndata: " + text + "\n\n");
}

TEST(SseFrame, retry_hint_and_comment) {
  EXPECT_EQ(evstream::sse::RetryHint(2000), "retry: 2000\n\n");
  EXPECT_EQ(evstream::sse::Comment("a\nb"), ": a b\n\n");
}

namespace {
evstream::feed::EventRow SampleRow() {
  evstream::feed::EventRow r;
  r.position = 7;
  r.tx = 900;
  r.channel = "project:p1";
  r.aggregate_type = "document";
  r.aggregate_id = "doc_1";
  r.event_type = "document.renamed";
  r.event_id = "0b9d6f7e-0000-4000-8000-000000000001";
  r.version = 3;
  r.data_json = R"({"title": "Line 1\nLine 2 \u00e9 ✓"})";
  r.metadata_json = "{}";
  r.display_null = false;
  r.display_json = R"({"role": "user"})";
  r.timestamp = "2026-01-02T03:04:05.678Z";
  r.created_by = "user:u1";
  r.correlation_null = false;
  r.correlation_id = "0b9d6f7e-0000-4000-8000-000000000002";
  return r;
}
}  // namespace

TEST(EventFrame, data_is_one_line_json_with_documented_fields_in_order) {
  auto ev = evstream::feed::MakeEvent(SampleRow());
  const std::string& f = *ev->frame;
  ASSERT_EQ(f.rfind("id: 7\nevent: document.renamed\ndata: {", 0), 0u) << f;
  ASSERT_EQ(f.substr(f.size() - 2), "\n\n");
  std::string data = f.substr(f.find("data: ") + 6);
  data = data.substr(0, data.size() - 2);
  EXPECT_EQ(data.find('\n'), std::string::npos);
  auto j = nlohmann::ordered_json::parse(data);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"type", "channel", "entity", "id", "version", "position", "eventId",
                                            "data", "metadata", "display", "timestamp", "correlationId",
                                            "causationId", "createdBy"}));
  EXPECT_EQ(j["type"], "document.renamed");
  EXPECT_EQ(j["entity"], "document");
  EXPECT_EQ(j["id"], "doc_1");
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["position"], 7);
  EXPECT_EQ(j["data"]["title"], "Line 1\nLine 2 \xC3\xA9 \xE2\x9C\x93");
  EXPECT_EQ(j["display"]["role"], "user");
  EXPECT_EQ(j["correlationId"], "0b9d6f7e-0000-4000-8000-000000000002");
  EXPECT_TRUE(j["causationId"].is_null());
  EXPECT_EQ(j["createdBy"], "user:u1");
  EXPECT_EQ(ev->key.tx, 900u);
  EXPECT_EQ(ev->key.position, 7);
}

TEST(EventFrame, strings_are_escaped) {
  auto row = SampleRow();
  row.aggregate_id = "quote\" back\\ nl\n";
  auto j = nlohmann::json::parse(evstream::feed::EventJson(row));
  EXPECT_EQ(j["id"], "quote\" back\\ nl\n");
}

TEST(LogKey, orders_by_tx_then_position) {
  using evstream::feed::LogKey;
  EXPECT_TRUE((LogKey{1, 9} < LogKey{2, 1}));
  EXPECT_TRUE((LogKey{2, 1} < LogKey{2, 3}));
  EXPECT_TRUE((LogKey{2, 3} <= LogKey{2, 3}));
  EXPECT_FALSE((LogKey{3, 1} <= LogKey{2, 9}));
}
