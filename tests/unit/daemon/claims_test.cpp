#include <gtest/gtest.h>

#include "auth/claims.hpp"

using namespace evstream::auth;

TEST(Claims, sub_projects_and_channels_map_to_channel_names) {
  auto p = PrincipalFromClaims(nlohmann::json::parse(
      R"({"sub":"u1","projects":["p1","p2"],"channels":["channel:lobby","channel:team-*",7]})"));
  EXPECT_EQ(p.sub, "u1");
  EXPECT_EQ(p.exact, (std::vector<std::string>{"user:u1", "project:p1", "project:p2", "channel:lobby"}));
  EXPECT_EQ(p.prefixes, (std::vector<std::string>{"channel:team-"}));
}

TEST(Claims, allows_exact_and_prefix_grants_only) {
  auto p = PrincipalFromClaims(nlohmann::json::parse(R"({"sub":"u1","channels":["channel:team-*"]})"));
  EXPECT_TRUE(Allows(p, "user:u1"));
  EXPECT_FALSE(Allows(p, "user:u2"));
  EXPECT_TRUE(Allows(p, "channel:team-a"));
  EXPECT_TRUE(Allows(p, "channel:team-*"));
  EXPECT_TRUE(Allows(p, "channel:team-a*"));
  EXPECT_FALSE(Allows(p, "channel:*"));  // wider than the grant
  EXPECT_FALSE(Allows(p, "channel:teams"));
  EXPECT_FALSE(Allows(p, "project:p1"));
}

TEST(Claims, without_channel_parameter_all_exact_grants_are_selected) {
  auto p = PrincipalFromClaims(nlohmann::json::parse(R"({"sub":"u1","projects":["p1"],"channels":["c:x-*"]})"));
  ChannelSet set;
  std::string denied;
  ASSERT_TRUE(SelectChannels(p, {}, &set, &denied));
  EXPECT_EQ(set.exact, (std::vector<std::string>{"user:u1", "project:p1"}));
  EXPECT_FALSE(set.HasPatterns());
}

TEST(Claims, a_channel_not_granted_is_denied_by_name) {
  auto p = PrincipalFromClaims(nlohmann::json::parse(R"({"projects":["a"]})"));
  ChannelSet set;
  std::string denied;
  EXPECT_FALSE(SelectChannels(p, {"project:a", "project:b"}, &set, &denied));
  EXPECT_EQ(denied, "project:b");
  ASSERT_TRUE(SelectChannels(p, {"project:a"}, &set, &denied));
  EXPECT_TRUE(set.Matches("project:a"));
  EXPECT_FALSE(set.Matches("project:b"));
}

TEST(Claims, garbage_claims_grant_nothing) {
  for (const char* j : {R"([])", R"({"sub":5,"projects":"p1","channels":{}})", R"({"sub":""})"}) {
    auto p = PrincipalFromClaims(nlohmann::json::parse(j));
    EXPECT_TRUE(p.exact.empty()) << j;
    EXPECT_TRUE(p.prefixes.empty()) << j;
  }
}

TEST(Topics, entity_patterns) {
  EXPECT_TRUE(TopicMatches("document:*", "document", "doc_1"));
  EXPECT_TRUE(TopicMatches("document:doc_1", "document", "doc_1"));
  EXPECT_FALSE(TopicMatches("document:doc_1", "document", "doc_2"));
  EXPECT_FALSE(TopicMatches("document:*", "submission", "doc_1"));
  EXPECT_TRUE(TopicMatches("document", "document", "x"));
  EXPECT_TRUE(TopicMatches("*", "anything", "x"));
  EXPECT_TRUE(TopicMatches("document:doc_*", "document", "doc_9"));
  EXPECT_FALSE(TopicMatches("document:doc_*", "document", "memo_9"));
  EXPECT_TRUE(TopicMatches("job:a:b", "job", "a:b"));  // ids may contain ':'
  EXPECT_TRUE(AnyTopicMatches({}, "x", "y"));          // no filter: everything
  EXPECT_TRUE(AnyTopicMatches({"a:*", "b:1"}, "b", "1"));
  EXPECT_FALSE(AnyTopicMatches({"a:*", "b:1"}, "b", "2"));
}

// One claims rule in the repository: the daemon's decisions are the extension's (RLS's).
TEST(Claims, the_daemon_decides_exactly_as_the_extension_rule) {
  const char* claims[] = {
      R"({"sub":"u1","projects":["p1","p2"],"channels":["channel:lobby","channel:team-*",7,""]})",
      R"({"sub":"","projects":"p1","channels":{}})",
      R"({"channels":["*"]})",
      R"({"sub":"a*","projects":["x*"]})",
      R"([])",
  };
  const char* channels[] = {"user:u1", "user:u2", "project:p1", "project:p3", "channel:lobby", "channel:lobby2",
                            "channel:team-a", "channel:team-", "channel:teams", "user:a", "project:xy", "anything"};
  const char* patterns[] = {"channel:team-", "channel:team-a", "channel:", "user:", "project:x", ""};
  for (const char* c : claims) {
    auto j = nlohmann::json::parse(c);
    evstream::claims::Allowed rule(j);
    Principal p = PrincipalFromClaims(j);
    for (const char* ch : channels) EXPECT_EQ(Allows(p, ch), rule.Channel(ch)) << c << " " << ch;
    for (const char* pre : patterns)
      EXPECT_EQ(Allows(p, std::string(pre) + "*"), rule.Prefix(pre)) << c << " " << pre << "*";
    EXPECT_EQ(p.exact, rule.Exact()) << c;
    EXPECT_EQ(p.prefixes, rule.Prefixes()) << c;
  }
}

// Fuzz finding (claims harness): an exact grant ending in '*' and a granted pattern had the same
// name, so they shared an /api/stats cache entry (one caller could be served the other's counts).
// Exact grants never hold a '*' now, and a set's key tells names and patterns apart regardless.
TEST(Claims, names_and_patterns_never_share_a_name_or_a_key) {
  auto p = PrincipalFromClaims(nlohmann::json::parse(R"({"projects":["a*","el:team-*","b"]})"));
  EXPECT_EQ(p.exact, (std::vector<std::string>{"project:b"}));
  ChannelSet set;
  std::string denied;
  ASSERT_TRUE(SelectChannels(p, {}, &set, &denied));
  for (const auto& name : set.Names()) EXPECT_TRUE(Allows(p, name)) << name;
  ChannelSet exact{{"project:a*"}, {}}, pattern{{}, {"project:a"}};
  EXPECT_EQ(exact.Names(), pattern.Names());  // the display is the same...
  EXPECT_NE(exact.Key(), pattern.Key());      // ...the key is not
  ChannelSet ab{{"project:a", "project:b"}, {}}, ba{{"project:b", "project:a"}, {}};
  EXPECT_EQ(ab.Key(), ba.Key());              // order does not matter
  ChannelSet joined{{"a\nb"}, {}}, split{{"a", "b"}, {}};
  EXPECT_NE(joined.Key(), split.Key());       // nor can a name forge a separator
}
