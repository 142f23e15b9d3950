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

TEST(Claims, GrantsAreListedOnceInClaimOrderWithTheSub) {
  Allowed a = Allowed::FromText(
      R"({"sub": "u1", "projects": ["p1", "p1"], "channels": ["project:p1", "channel:t-*", "channel:t-*", "user:u1"]})");
  EXPECT_EQ(a.Sub(), "u1");
  EXPECT_EQ(a.Exact(), (std::vector<std::string>{"user:u1", "project:p1"}));
  EXPECT_EQ(a.Prefixes(), (std::vector<std::string>{"channel:t-"}));
  EXPECT_EQ(Allowed::FromText(R"({"sub": 7})").Sub(), "");
}

TEST(Claims, APatternIsAllowedOnlyWhenAGrantedPatternCoversAllOfIt) {
  Allowed a = Allowed::FromText(R"({"projects": ["team-a"], "channels": ["channel:team-*"]})");
  EXPECT_TRUE(a.Prefix("channel:team-"));
  EXPECT_TRUE(a.Prefix("channel:team-a"));
  EXPECT_FALSE(a.Prefix("channel:"));       // wider than the grant
  EXPECT_FALSE(a.Prefix("channel:team"));   // wider too
  EXPECT_FALSE(a.Prefix("project:team-"));  // exact grants never cover a pattern
  EXPECT_FALSE(Allowed().Prefix(""));
}

// Fuzz finding (claims harness, 2026-11-28): {"projects": ["el:team-*"]} granted the exact name
// "project:el:team-*", which reads back as the pattern "project:el:team-" wherever channel sets
// are named (the `connected` frame, the /api/stats cache key). No channel id may contain '*'
// (validate::Channel), so such a grant named nothing that exists; it is now not granted at all.
TEST(Claims, AStarInANameIsNeverAnExactGrant) {
  Allowed a = Allowed::FromText(
      R"({"sub": "u*", "projects": ["a*", "b", "*"], "channels": ["project:c*d", "channel:e", "channel:f-*"]})");
  EXPECT_EQ(a.Exact(), (std::vector<std::string>{"project:b", "channel:e"}));
  EXPECT_EQ(a.Prefixes(), (std::vector<std::string>{"channel:f-"}));
  EXPECT_EQ(a.Sub(), "u*");  // the identity is the token's; it only grants no channel
  EXPECT_FALSE(a.Channel("user:u*"));
  EXPECT_FALSE(a.Channel("project:a*"));
  EXPECT_FALSE(a.Prefix("project:a"));
  EXPECT_FALSE(a.Channel("project:c*d"));
}
