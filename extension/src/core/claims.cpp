// The channel rule for JWT claims (see claims.hpp).
#include "evstream/claims.hpp"

#include <algorithm>

namespace evstream::claims {
namespace {
void AddUnique(std::vector<std::string>* v, std::string s) {
  if (std::find(v->begin(), v->end(), s) == v->end()) v->push_back(std::move(s));
}
// An exact grant is a channel name; no channel id holds a '*' (validate::Channel), and a name
// with one would read as a pattern wherever grants are listed. Such a grant names nothing that
// can exist, so it is not granted.
void AddExact(std::vector<std::string>* v, std::string s) {
  if (s.find('*') == std::string::npos) AddUnique(v, std::move(s));
}
bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
}  // namespace

Allowed::Allowed(const nlohmann::json& claims) {
  if (!claims.is_object()) return;
  auto sub = claims.find("sub");
  if (sub != claims.end() && sub->is_string() && !sub->get_ref<const std::string&>().empty()) {
    sub_ = sub->get<std::string>();
    AddExact(&exact_, "user:" + sub_);
  }
  auto projects = claims.find("projects");
  if (projects != claims.end() && projects->is_array())
    for (const auto& p : *projects)
      if (p.is_string() && !p.get_ref<const std::string&>().empty())
        AddExact(&exact_, "project:" + p.get<std::string>());
  auto channels = claims.find("channels");
  if (channels != claims.end() && channels->is_array()) {
    for (const auto& c : *channels) {
      if (!c.is_string()) continue;
      const std::string& name = c.get_ref<const std::string&>();
      if (name.empty()) continue;
      if (name.back() == '*') AddUnique(&prefixes_, name.substr(0, name.size() - 1));
      else AddExact(&exact_, name);
    }
  }
}

Allowed Allowed::FromText(std::string_view text) {
  if (text.empty()) return Allowed();
  nlohmann::json parsed = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (parsed.is_discarded()) return Allowed();
  return Allowed(parsed);
}

bool Allowed::Channel(std::string_view channel) const {
  for (const std::string& e : exact_)
    if (channel == e) return true;
  for (const std::string& p : prefixes_)
    if (StartsWith(channel, p)) return true;
  return false;
}

bool Allowed::Prefix(std::string_view prefix) const {
  for (const std::string& p : prefixes_)
    if (StartsWith(prefix, p)) return true;
  return false;
}

}  // namespace evstream::claims
