// A small JSON Schema validator over nlohmann::json, as pure C++ (no PostgreSQL headers).
//
// Supported keywords (everything else is refused when the schema is compiled, so that a typo
// such as "minimun" cannot silently disable a check):
//   type (a name or an array of names), properties, required, additionalProperties (bool or
//   schema), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
//   minLength, maxLength, pattern (unanchored, run by RE2 in linear time), items (one schema for
//   every element), minItems, maxItems, format (uuid | date-time | email).
// Annotations are accepted and ignored: $schema, $id, $comment, title, description, default,
// examples, deprecated, readOnly, writeOnly. `true` and `false` are schemas too.
//
// Hostile schemas and documents: a schema is bounded (size, nesting, number of patterns, each
// pattern's length and compiled size, numeric keywords in range) and refused at compile time
// otherwise; patterns run on RE2 (no backtracking, no recursion, bounded memory), and a single
// match is bounded in work (see PatternSubjectLimit); Validate polls `check_interrupts` as it
// walks, so a caller inside PostgreSQL honours statement_timeout and cancels.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::json_schema {

// The schema itself is not acceptable; the message names the place ("schema.properties.price:
// unknown keyword \"minimun\""). kind tells a caller which SQLSTATE fits.
class InvalidSchema : public std::runtime_error {
 public:
  enum class Kind {
    kInvalid,   // a keyword's value is wrong (22023 invalid_parameter_value)
    kPattern,   // a pattern RE2 cannot compile (2201B invalid_regular_expression)
    kTooLarge,  // a bound below is exceeded (54000 program_limit_exceeded)
  };
  explicit InvalidSchema(const std::string& message, Kind kind = Kind::kInvalid)
      : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// Bounds on a schema, checked by Compile.
inline constexpr size_t kMaxSchemaValues = 10000;     // JSON values in the schema document
inline constexpr size_t kMaxSchemaBytes = 256 * 1024;  // sum of its string and key lengths
inline constexpr size_t kMaxSchemaDepth = 64;         // nesting of the schema document
inline constexpr size_t kMaxPatterns = 64;            // `pattern` keywords in one schema
inline constexpr size_t kMaxPatternLength = 4096;     // bytes of one pattern
inline constexpr int kMaxPatternProgram = 1000;       // RE2 program size of one pattern
inline constexpr int64_t kPatternMemory = 1 << 20;    // RE2 max_mem of one pattern
inline constexpr int64_t kMaxCount = 2147483647;      // minLength, maxLength, minItems, maxItems

// Bound on the work of one (uninterruptible) match: subject bytes x program size. Strings longer
// than PatternSubjectLimit(program size) fail validation with a clear message instead of being
// matched. For a pattern of 20 instructions this is 800 KiB; at kMaxPatternProgram, 16 KiB.
inline constexpr int64_t kPatternWorkBudget = int64_t{1} << 24;
size_t PatternSubjectLimit(int program_size);

struct Node;

// A compiled schema: compile once (at registration or on first use), validate many times.
class Schema {
 public:
  // Throws InvalidSchema.
  static Schema Compile(const nlohmann::json& schema);

  // Returns nullopt when `data` is valid, else the first violation as "<path>: <rule>", e.g.
  // "data.price: -3 is less than minimum 0". `root` names the document in paths.
  // `check_interrupts` (may be empty) is called every so often during the walk; it may throw to
  // abandon the validation (inside PostgreSQL: a pending cancel or statement_timeout).
  std::optional<std::string> Validate(const nlohmann::json& data, std::string_view root = "data",
                                      const std::function<void()>& check_interrupts = {}) const;

 private:
  std::shared_ptr<const Node> root_;
};

// Path helpers, exposed for tests: ".name" for identifier-like keys, otherwise ["key"].
std::string MemberPath(std::string_view parent, std::string_view key);

// Formats, exposed for tests.
bool IsUuid(std::string_view s);
bool IsDateTime(std::string_view s);
bool IsEmail(std::string_view s);

// A JSON Schema pattern (ECMAScript syntax) in RE2 syntax: \uXXXX becomes \x{XXXX} and a named
// group (?<name>...) becomes (?P<name>...). Everything else is passed as is; RE2 refuses what it
// cannot run in linear time (backreferences, lookaround). Exposed for tests.
std::string PatternToRe2(std::string_view pattern);

}  // namespace evstream::json_schema
