// A small JSON Schema validator over nlohmann::json, as pure C++ (no PostgreSQL headers).
//
// Supported keywords (everything else is refused when the schema is compiled, so that a typo
// such as "minimun" cannot silently disable a check):
//   type (a name or an array of names), properties, required, additionalProperties (bool or
//   schema), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
//   minLength, maxLength, pattern (ECMAScript, unanchored), items (one schema for every element),
//   minItems, maxItems, format (uuid | date-time | email).
// Annotations are accepted and ignored: $schema, $id, $comment, title, description, default,
// examples, deprecated, readOnly, writeOnly. `true` and `false` are schemas too.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::json_schema {

// The schema itself is not valid; the message names the place ("schema.properties.price:
// unknown keyword \"minimun\"").
class InvalidSchema : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Strings longer than this are not matched against `pattern` (std::regex recurses per
// character); such a value fails validation with a clear message.
inline constexpr size_t kMaxPatternSubject = 10000;

struct Node;

// A compiled schema: compile once (at registration or on first use), validate many times.
class Schema {
 public:
  // Throws InvalidSchema.
  static Schema Compile(const nlohmann::json& schema);

  // Returns nullopt when `data` is valid, else the first violation as "<path>: <rule>", e.g.
  // "data.price: -3 is less than minimum 0". `root` names the document in paths.
  std::optional<std::string> Validate(const nlohmann::json& data,
                                      std::string_view root = "data") const;

 private:
  std::shared_ptr<const Node> root_;
};

// Path helpers, exposed for tests: ".name" for identifier-like keys, otherwise ["key"].
std::string MemberPath(std::string_view parent, std::string_view key);

// Formats, exposed for tests.
bool IsUuid(std::string_view s);
bool IsDateTime(std::string_view s);
bool IsEmail(std::string_view s);

}  // namespace evstream::json_schema
