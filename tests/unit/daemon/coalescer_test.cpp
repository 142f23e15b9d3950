// Publish-side coalescing of token chunks: order within a stream, stream boundaries, limits.
#include <gtest/gtest.h>

#include "realtime/coalescer.hpp"

using evstream::realtime::Coalescer;
using evstream::realtime::Publication;

namespace {
Publication Chunk(const std::string& stream, const std::string& text, bool done = false,
                  const std::string& channel = "project:p1", uint64_t ticket = 0) {
  Publication p;
  p.channel = channel;
  p.type = "ai_chat_chunk";
  p.data = {{"streamId", stream}, {"text", text}};
  if (done) p.data["done"] = true;
  if (ticket) p.tickets = {ticket};
  return p;
}
Publication Other(const std::string& type, nlohmann::json data = nlohmann::json::object()) {
  Publication p;
  p.channel = "project:p1";
  p.type = type;
  p.data = std::move(data);
  return p;
}
}  // namespace

TEST(Coalescer, chunks_of_one_stream_merge_in_arrival_order) {
  Coalescer c;
  EXPECT_FALSE(c.Add(Chunk("s1", "Hel", false, "project:p1", 1)));
  EXPECT_TRUE(c.Add(Chunk("s1", "lo, ", false, "project:p1", 2)));
  EXPECT_TRUE(c.Add(Chunk("s1", "world", false, "project:p1", 3)));
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data["text"], "Hello, world");
  EXPECT_EQ(out[0].chunks, 3);
  EXPECT_EQ(out[0].tickets, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(c.empty());
}

TEST(Coalescer, interleaved_streams_each_keep_their_own_order) {
  Coalescer c;
  c.Add(Chunk("a", "1"));
  c.Add(Chunk("b", "x"));
  c.Add(Chunk("a", "2"));
  c.Add(Chunk("b", "y"));
  c.Add(Chunk("a", "3"));
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data["streamId"], "a");
  EXPECT_EQ(out[0].data["text"], "123");
  EXPECT_EQ(out[1].data["streamId"], "b");
  EXPECT_EQ(out[1].data["text"], "xy");
}

TEST(Coalescer, done_chunk_ends_the_merge_and_carries_done) {
  Coalescer c;
  c.Add(Chunk("s", "a"));
  c.Add(Chunk("s", "b", true));
  c.Add(Chunk("s", "c"));  // after done: a new event, never merged backwards
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data["text"], "ab");
  EXPECT_EQ(out[0].data["done"], true);
  EXPECT_EQ(out[1].data["text"], "c");
}

TEST(Coalescer, non_chunk_event_of_a_stream_is_a_barrier) {
  Coalescer c;
  c.Add(Chunk("s", "a"));
  c.Add(Other("ai_chat_chunk", {{"streamId", "s"}, {"done", true}}));  // no text: not a chunk
  c.Add(Chunk("s", "b"));
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].data["text"], "a");
  EXPECT_FALSE(out[1].data.contains("text"));
  EXPECT_EQ(out[2].data["text"], "b");
}

TEST(Coalescer, other_events_pass_unchanged_in_order) {
  Coalescer c;
  c.Add(Other("typing", {{"isTyping", true}}));
  c.Add(Other("typing", {{"isTyping", false}}));
  c.Add(Chunk("s", "x"));
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].data["isTyping"], true);
  EXPECT_EQ(out[1].data["isTyping"], false);
  EXPECT_EQ(out[2].type, "ai_chat_chunk");
}

TEST(Coalescer, different_channels_do_not_merge) {
  Coalescer c;
  c.Add(Chunk("s", "a", false, "project:p1"));
  c.Add(Chunk("s", "b", false, "project:p2"));
  EXPECT_EQ(c.TakeAll().size(), 2u);
}

TEST(Coalescer, merged_payload_stays_under_the_limit) {
  Coalescer c(Coalescer::PayloadBytesBound(Chunk("s", "1234567890")));
  c.Add(Chunk("s", "12345"));
  c.Add(Chunk("s", "67890"));  // exactly 10: merged
  c.Add(Chunk("s", "X"));      // would be 11: starts a new event
  c.Add(Chunk("s", "Y"));      // joins the new one
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data["text"], "1234567890");
  EXPECT_EQ(out[1].data["text"], "XY");
}

TEST(Coalescer, take_all_starts_a_fresh_batch) {
  Coalescer c;
  c.Add(Chunk("s", "a"));
  c.TakeAll();
  EXPECT_FALSE(c.Add(Chunk("s", "b")));  // nothing open to merge into
  EXPECT_EQ(c.TakeAll()[0].data["text"], "b");
}

TEST(Coalescer, a_done_that_is_not_a_boolean_never_throws_and_does_not_end_the_stream) {
  Coalescer c;
  Publication first = Chunk("s", "a");
  first.data["done"] = "yes";
  c.Add(first);
  EXPECT_NO_THROW(EXPECT_TRUE(c.Add(Chunk("s", "b"))));
  auto out = c.TakeAll();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data["text"], "ab");
}
