#include "auth/claims.hpp"

#include <algorithm>

namespace evstream::auth {
namespace {
bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}
void AddUnique(std::vector<std::string>* v, const std::string& s) {
  if (std::find(v->begin(), v->end(), s) == v->end()) v->push_back(s);
}
}  // namespace

Principal PrincipalFromClaims(const nlohmann::json& claims) {
  Principal p;
  p.grants = claims::Allowed(claims);
  p.sub = p.grants.Sub();
  p.exact = p.grants.Exact();
  p.prefixes = p.grants.Prefixes();
  return p;
}

bool ChannelSet::Matches(const std::string& channel) const {
  for (const auto& e : exact)
    if (e == channel) return true;
  for (const auto& pre : prefixes)
    if (StartsWith(channel, pre)) return true;
  return false;
}

std::vector<std::string> ChannelSet::Names() const {
  std::vector<std::string> names = exact;
  for (const auto& pre : prefixes) names.push_back(pre + "*");
  return names;
}

std::string ChannelSet::Key() const {
  std::vector<std::string> parts;
  for (const auto& e : exact) parts.push_back("=" + e);
  for (const auto& pre : prefixes) parts.push_back("^" + pre);
  std::sort(parts.begin(), parts.end());
  parts.erase(std::unique(parts.begin(), parts.end()), parts.end());
  std::string key;
  for (const auto& part : parts) key += std::to_string(part.size()) + ':' + part;
  return key;
}

bool Allows(const Principal& p, const std::string& requested) {
  if (requested.empty()) return false;
  if (requested.back() == '*') return p.grants.Prefix(std::string_view(requested).substr(0, requested.size() - 1));
  return p.grants.Channel(requested);
}

bool SelectChannels(const Principal& p, const std::vector<std::string>& requested, ChannelSet* out,
                    std::string* denied) {
  ChannelSet set;
  if (requested.empty()) {
    set.exact = p.exact;
  } else {
    for (const auto& r : requested) {
      if (!Allows(p, r)) {
        *denied = r;
        return false;
      }
      if (r.back() == '*')
        AddUnique(&set.prefixes, r.substr(0, r.size() - 1));
      else
        AddUnique(&set.exact, r);
    }
  }
  *out = std::move(set);
  return true;
}

bool TopicMatches(const std::string& pattern, const std::string& aggregate_type,
                  const std::string& aggregate_id) {
  if (pattern == "*") return true;
  auto colon = pattern.find(':');
  std::string type = colon == std::string::npos ? pattern : pattern.substr(0, colon);
  if (type != "*" && type != aggregate_type) return false;
  if (colon == std::string::npos) return true;
  std::string id = pattern.substr(colon + 1);
  if (!id.empty() && id.back() == '*') return StartsWith(aggregate_id, id.substr(0, id.size() - 1));
  return id == aggregate_id;
}

bool AnyTopicMatches(const std::vector<std::string>& patterns, const std::string& aggregate_type,
                     const std::string& aggregate_id) {
  if (patterns.empty()) return true;
  for (const auto& p : patterns)
    if (TopicMatches(p, aggregate_type, aggregate_id)) return true;
  return false;
}

}  // namespace evstream::auth
