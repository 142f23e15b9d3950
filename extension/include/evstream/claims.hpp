// Which channels a caller's JWT claims allow (pure C++; the same rule RLS and the daemon use).
//
//   sub: "alice"              -> user:alice
//   projects: ["p1", "p2"]    -> project:p1, project:p2
//   channels: ["channel:x", "project:team-*"]
//                             -> those names; a trailing '*' matches any channel with that prefix
// Anything else (missing or malformed claims, non-string entries) allows nothing.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace evstream::claims {

class Allowed {
 public:
  Allowed() = default;
  // From a parsed claims object; non-objects allow nothing.
  explicit Allowed(const nlohmann::json& claims);
  // From claims text (request.jwt.claims); empty or invalid JSON allows nothing.
  static Allowed FromText(std::string_view text);

  bool Channel(std::string_view channel) const;

 private:
  std::vector<std::string> exact_;
  std::vector<std::string> prefixes_;
};

}  // namespace evstream::claims
