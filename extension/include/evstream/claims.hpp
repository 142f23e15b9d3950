// Which channels a caller's JWT claims allow (pure C++; the one claims rule of the repository:
// the database's row-level security and evstreamd both use it).
//
//   sub: "alice"              -> user:alice
//   projects: ["p1", "p2"]    -> project:p1, project:p2
//   channels: ["channel:x", "project:team-*"]
//                             -> those names; a trailing '*' matches any channel with that prefix
// Anything else (missing or malformed claims, non-string or empty entries, a name holding a '*'
// anywhere but at the end of a channels[] pattern) allows nothing.
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

  // May a channel with exactly this name be read or written?
  bool Channel(std::string_view channel) const;
  // May every channel starting with `prefix` be read (a requested pattern "prefix*")? Only when
  // one granted pattern covers all of it.
  bool Prefix(std::string_view prefix) const;

  const std::string& Sub() const { return sub_; }  // "" without a string sub
  // The grants, each once, in claim order: names, and patterns without their '*'.
  const std::vector<std::string>& Exact() const { return exact_; }
  const std::vector<std::string>& Prefixes() const { return prefixes_; }

 private:
  std::string sub_;
  std::vector<std::string> exact_;
  std::vector<std::string> prefixes_;
};

}  // namespace evstream::claims
