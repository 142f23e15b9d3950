// The channel rule for JWT claims (evstream::claims).
#include "evstream/claims.hpp"

#include <gtest/gtest.h>

using evstream::claims::Allowed;

TEST(Claims, SubAllowsTheUserChannel) {
  Allowed a = Allowed::FromText(R"({"sub": "alice"})");
  EXPECT_TRUE(a.Channel("user:alice"));
  EXPECT_FALSE(a.Channel("user:bob"));
  EXPECT_FALSE(a.Channel("user:alice2"));
}

TEST(Claims, ProjectsAllowProjectChannels) {
  Allowed a = Allowed::FromText(R"({"projects": ["a", "b"]})");
  EXPECT_TRUE(a.Channel("project:a"));
  EXPECT_TRUE(a.Channel("project:b"));
  EXPECT_FALSE(a.Channel("project:c"));
  EXPECT_FALSE(a.Channel("channel:a"));
}

TEST(Claims, ChannelsAreExactUnlessTheyEndWithAStar) {
  Allowed a = Allowed::FromText(R"({"channels": ["channel:lobby", "project:team-*"]})");
  EXPECT_TRUE(a.Channel("channel:lobby"));
  EXPECT_FALSE(a.Channel("channel:lobby2"));
  EXPECT_TRUE(a.Channel("project:team-1"));
  EXPECT_FALSE(a.Channel("project:other"));
}

TEST(Claims, MissingOrMalformedClaimsAllowNothing) {
  EXPECT_FALSE(Allowed::FromText("").Channel("user:alice"));
  EXPECT_FALSE(Allowed::FromText("{not json").Channel("user:alice"));
  EXPECT_FALSE(Allowed::FromText(R"(["sub"])").Channel("user:sub"));
  EXPECT_FALSE(Allowed::FromText(R"({"sub": 5, "projects": "a", "channels": [1, ""]})").Channel("project:a"));
  EXPECT_FALSE(Allowed::FromText(R"({"sub": ""})").Channel("user:"));
}
