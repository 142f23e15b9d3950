// Input rules for events (evstream::validate).
#include "evstream/validate.hpp"

#include <gtest/gtest.h>

namespace v = evstream::validate;

TEST(Channel, AcceptsTheThreeScopes) {
  EXPECT_FALSE(v::Channel("channel", "project:p1"));
  EXPECT_FALSE(v::Channel("channel", "user:alice@example.com"));
  EXPECT_FALSE(v::Channel("channel", "channel:room-1.general"));
}

TEST(Channel, RejectsOtherPrefixesEmptyIdsAndPatterns) {
  EXPECT_EQ(*v::Channel("channel", "team:t1"),
            "channel must be project:<id>, user:<id> or channel:<id>, got \"team:t1\"");
  EXPECT_TRUE(v::Channel("channel", "project:"));
  EXPECT_TRUE(v::Channel("channel", "project:a*"));
  EXPECT_TRUE(v::Channel("channel", "project:a b"));
  EXPECT_TRUE(v::Channel("channel", ""));
}

TEST(Channel, NamesTheFieldGiven) {
  EXPECT_EQ(v::Channel("events[2].channel", "x")->rfind("events[2].channel", 0), 0u);
}

TEST(EventType, AllowsDottedNamesOnly) {
  EXPECT_FALSE(v::EventType("event_type", "document.created"));
  EXPECT_FALSE(v::EventType("event_type", "ai_chat"));
  EXPECT_TRUE(v::EventType("event_type", ""));
  EXPECT_TRUE(v::EventType("event_type", "document created"));
  EXPECT_TRUE(v::EventType("event_type", std::string(201, 'a')));
}

TEST(CreatedBy, AcceptsUserAgentAndSystem) {
  EXPECT_FALSE(v::CreatedBy("created_by", "system"));
  EXPECT_FALSE(v::CreatedBy("created_by", "user:42"));
  EXPECT_FALSE(v::CreatedBy("created_by", "agent:summariser"));
  EXPECT_TRUE(v::CreatedBy("created_by", "admin"));
  EXPECT_TRUE(v::CreatedBy("created_by", "user:"));
}

TEST(IdempotencyKey, LimitsLength) {
  EXPECT_FALSE(v::IdempotencyKey("idempotency_key", std::string(255, 'k')));
  EXPECT_EQ(*v::IdempotencyKey("idempotency_key", std::string(256, 'k')),
            "idempotency_key is longer than 255 characters");
  EXPECT_TRUE(v::IdempotencyKey("idempotency_key", ""));
}

TEST(Identifier, RejectsEmptyAndControlCharacters) {
  EXPECT_FALSE(v::Identifier("aggregate_id", "doc_1"));
  EXPECT_TRUE(v::Identifier("aggregate_id", ""));
  EXPECT_TRUE(v::Identifier("aggregate_id", "a\nb"));
}

TEST(DisplayRole, OnlyTheThreeRoles) {
  EXPECT_FALSE(v::DisplayRole("display.role", "assistant"));
  EXPECT_TRUE(v::DisplayRole("display.role", "bot"));
}

// Fuzzing finding (tests/fuzz/corpus/input_rules/finding-channel-utf8-cut): the message quoted the
// first 60 bytes of the value and could end in half a character — invalid UTF-8 in an error
// message (the client's encoding conversion fails on it).
TEST(Channel, message_never_cuts_a_character) {
  std::string value = "team:";
  for (int i = 0; i < 40; i++) value += "\xc3\xa9";
  auto problem = v::Channel("channel", value);
  ASSERT_TRUE(problem);
  std::string quoted = problem->substr(problem->find('"') + 1);
  quoted.pop_back();  // the closing quote
  EXPECT_LE(quoted.size(), 60u);
  EXPECT_EQ(quoted.size() % 2, 1u) << "\"team:\" then whole two-byte characters";
  EXPECT_EQ(quoted.substr(0, 5), "team:");
}
