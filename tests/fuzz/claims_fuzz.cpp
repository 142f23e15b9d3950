// Claims -> channels and topic matching (daemon/src/auth/claims.cpp). Input: "<claims JSON>\n
// <requested channels, comma-separated>\n<topic patterns, comma-separated>\n<type>:<id>".
// Properties: nothing throws; every channel SelectChannels grants is allowed by the claims;
// a channel the set matches is covered by the principal; topic matching returns.
#include <cstdint>

#include "auth/claims.hpp"
#include "fuzz_util.hpp"

namespace auth = evstream::auth;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Split(fuzz::View(data, size), '\n', 4);
  json claims = json::parse(parts[0], nullptr, false);
  if (claims.is_discarded()) return 0;
  auth::Principal p = auth::PrincipalFromClaims(claims);
  std::vector<std::string> requested;
  if (parts.size() > 1 && !parts[1].empty()) requested = fuzz::Split(parts[1], ',', 64);
  auth::ChannelSet set;
  std::string denied;
  if (auth::SelectChannels(p, requested, &set, &denied)) {
    for (const std::string& c : set.exact) FUZZ_CHECK(p.grants.Channel(c), "granted a channel the claims do not allow");
    for (const std::string& pre : set.prefixes) FUZZ_CHECK(p.grants.Prefix(pre), "granted a pattern the claims do not allow");
    for (const std::string& c : set.Names()) FUZZ_CHECK(auth::Allows(p, c), "a granted name reads as one the claims do not allow");
    for (const std::string& c : requested)
      if (!c.empty() && c.back() != '*' && set.Matches(c)) FUZZ_CHECK(auth::Allows(p, c), "set matches a forbidden channel");
  } else {
    FUZZ_CHECK(!auth::Allows(p, denied), "denied a channel the claims allow");
  }
  std::vector<std::string> topics;
  if (parts.size() > 2) topics = fuzz::Split(parts[2], ',', 64);
  std::string type = "document", id = "doc_1";
  if (parts.size() > 3) {
    auto ti = fuzz::Split(parts[3], ':', 2);
    type = ti[0];
    id = ti.size() > 1 ? ti[1] : "";
  }
  bool any = auth::AnyTopicMatches(topics, type, id);
  bool one = topics.empty();  // no topic filter: everything matches
  for (const std::string& t : topics) one = one || auth::TopicMatches(t, type, id);
  FUZZ_CHECK(any == one, "AnyTopicMatches disagrees with TopicMatches");
  return 0;
}
