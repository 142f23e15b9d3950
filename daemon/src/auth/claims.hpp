// Who a token holder is and which channels it may read: the claims rule itself is the
// extension's (evstream/claims.hpp, the one RLS uses):
//   sub -> user:<sub>; projects[] -> project:<p>; channels[] -> names, trailing '*' = prefix.
// Here: the channel selection of a request, and topic filters.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evstream/claims.hpp"

namespace evstream::auth {

struct Principal {
  std::string sub;
  std::vector<std::string> exact;     // channels granted by name
  std::vector<std::string> prefixes;  // granted patterns, '*' removed ("channel:team-")
  claims::Allowed grants;             // the rule those come from
};

Principal PrincipalFromClaims(const nlohmann::json& claims);

// A channel selector: an exact name, or a pattern with a trailing '*'.
struct ChannelSet {
  std::vector<std::string> exact;
  std::vector<std::string> prefixes;
  bool Matches(const std::string& channel) const;
  bool HasPatterns() const { return !prefixes.empty(); }
  std::vector<std::string> Names() const;  // as requested ("project:a", "channel:t-*")
  // One string per set, for caches: names and patterns apart, order-independent, injective.
  std::string Key() const;
};

// Is the requested channel (possibly a pattern) covered by what the principal holds?
bool Allows(const Principal& p, const std::string& requested);

// Builds the set a client asked for; an empty request means every exact grant.
// Returns false with *denied set to the first channel the principal may not read.
bool SelectChannels(const Principal& p, const std::vector<std::string>& requested, ChannelSet* out,
                    std::string* denied);

// Topic filter on (aggregate_type, aggregate_id): "document:*", "document:doc_1", "document",
// "*", and a trailing '*' on the id as a prefix ("document:doc_*").
bool TopicMatches(const std::string& pattern, const std::string& aggregate_type,
                  const std::string& aggregate_id);
bool AnyTopicMatches(const std::vector<std::string>& patterns, const std::string& aggregate_type,
                     const std::string& aggregate_id);

}  // namespace evstream::auth
