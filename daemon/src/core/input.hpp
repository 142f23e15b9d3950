// The edge for input from outside (HTTP bodies and query strings, NOTIFY payloads, rows read from
// PostgreSQL): parse into typed values here, with every type, range and size checked, and let the
// rest of the code take the typed result. Never `value(key, default)` on outsider data (it throws
// when the stored type differs); never `get<T>()` without a type check. Pure: unit-tested.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::core {

// Deeper nesting is refused before parsing: copying or dumping a value recurses per level.
constexpr int kMaxJsonDepth = 256;

// A request body that must be a JSON object. On failure `error` says why and where (`offset`:
// the zero-based byte offset of the offending byte; -1 when the JSON is valid but not an object).
struct JsonBody {
  nlohmann::json value;
  std::string error;
  long long offset = -1;
  bool ok() const { return error.empty(); }
};
JsonBody ParseJsonObject(std::string_view text);

enum class Need { Optional, Required };

// Typed reads from a JSON object an outsider wrote. Each accessor returns the value when it is
// present with the right type and range, nothing when it is absent (or null), and records the
// first problem ("isTyping must be a boolean", field "data.isTyping") otherwise. Required fields
// that are missing are problems too; a required string must also be non-empty. Strings may not
// contain NUL (PostgreSQL text cannot hold it).
class Fields {
 public:
  explicit Fields(const nlohmann::json& object, std::string prefix = "");
  std::optional<std::string> String(const char* key, Need need = Need::Optional);
  std::optional<int64_t> Int(const char* key, int64_t min, int64_t max, Need need = Need::Optional);
  std::optional<bool> Bool(const char* key, Need need = Need::Optional);
  // A JSON object (nullptr when absent).
  const nlohmann::json* Object(const char* key, Need need = Need::Optional);
  // Any JSON value but null (nullptr when absent).
  const nlohmann::json* Value(const char* key);

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }  // the first problem, for the client
  const std::string& field() const { return field_; }  // its path: "data.isTyping"

 private:
  const nlohmann::json* Find(const char* key, Need need);
  void Fail(const char* key, const std::string& what);
  const nlohmann::json& obj_;
  std::string prefix_;
  std::string error_, field_;
};

// The same checks for one value (not a field of an object).
std::optional<bool> AsBool(const nlohmann::json& j);
std::optional<std::string> AsString(const nlohmann::json& j);

// Text to numbers, strictly: optional leading '-', digits only (no spaces, '+', or trailing
// garbage), within range. For query parameters, headers, and text-format columns from libpq.
bool ParseInt64(std::string_view s, int64_t* out);
bool ParseUint64(std::string_view s, uint64_t* out);
bool ParseDouble(std::string_view s, double* out);  // finite only

}  // namespace evstream::core
