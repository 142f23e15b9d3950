// The channel rule for JWT claims (see claims.hpp).
#include "evstream/claims.hpp"

namespace evstream::claims {

Allowed::Allowed(const nlohmann::json& claims) {
  if (!claims.is_object()) return;
  auto sub = claims.find("sub");
  if (sub != claims.end() && sub->is_string() && !sub->get_ref<const std::string&>().empty())
    exact_.push_back("user:" + sub->get<std::string>());
  auto projects = claims.find("projects");
  if (projects != claims.end() && projects->is_array())
    for (const auto& p : *projects)
      if (p.is_string() && !p.get_ref<const std::string&>().empty())
        exact_.push_back("project:" + p.get<std::string>());
  auto channels = claims.find("channels");
  if (channels != claims.end() && channels->is_array()) {
    for (const auto& c : *channels) {
      if (!c.is_string()) continue;
      const std::string& name = c.get_ref<const std::string&>();
      if (name.empty()) continue;
      if (name.back() == '*') prefixes_.push_back(name.substr(0, name.size() - 1));
      else exact_.push_back(name);
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
    if (channel.substr(0, p.size()) == p) return true;
  return false;
}

}  // namespace evstream::claims
