#include "core/input.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace evstream::core {
namespace {
using nlohmann::json;

const char* TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    default: return "something else";
  }
}

// The byte offset where the nesting first passes kMaxJsonDepth, or -1. Brackets inside strings
// do not count (escapes are honoured).
long long TooDeepAt(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); i++) {
    char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return static_cast<long long>(i);
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return -1;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string Reason(const char* what) {
  std::string s = what ? what : "";
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  return s;
}
}  // namespace

JsonBody ParseJsonObject(std::string_view text) {
  JsonBody out;
  if (long long at = TooDeepAt(text); at >= 0) {
    out.offset = at;
    out.error = "the body is not acceptable JSON: nested deeper than " + std::to_string(kMaxJsonDepth) +
                " levels at byte offset " + std::to_string(at);
    return out;
  }
  try {
    out.value = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // e.byte counts from 1 (the byte being read when the error was found).
    out.offset = e.byte > 0 ? static_cast<long long>(e.byte) - 1 : 0;
    if (out.offset > static_cast<long long>(text.size())) out.offset = static_cast<long long>(text.size());
    out.error = "the body is not valid JSON: error at byte offset " + std::to_string(out.offset) + " (" +
                Reason(e.what()) + ")";
    return out;
  } catch (const json::exception& e) {
    // e.g. out_of_range 406 for a number like 1e400 (its text is in the message).
    out.error = "the body is not acceptable JSON: " + Reason(e.what());
    return out;
  }
  if (!out.value.is_object()) {
    out.error = std::string("the body must be a JSON object, not ") + TypeName(out.value);
    out.value = json::object();
  }
  return out;
}

Fields::Fields(const json& object, std::string prefix) : obj_(object), prefix_(std::move(prefix)) {}

void Fields::Fail(const char* key, const std::string& what) {
  if (!error_.empty()) return;
  field_ = prefix_ + key;
  error_ = field_ + " " + what;
}

const json* Fields::Find(const char* key, Need need) {
  if (obj_.is_object()) {
    auto it = obj_.find(key);
    if (it != obj_.end() && !it->is_null()) return &*it;
  }
  if (need == Need::Required) Fail(key, "is required");
  return nullptr;
}

std::optional<std::string> Fields::String(const char* key, Need need) {
  const json* v = Find(key, need);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Fail(key, std::string("must be a string, not ") + TypeName(*v));
    return std::nullopt;
  }
  const std::string& s = v->get_ref<const std::string&>();
  if (s.find('\0') != std::string::npos) {
    Fail(key, "must not contain NUL characters");
    return std::nullopt;
  }
  if (need == Need::Required && s.empty()) {
    Fail(key, "must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> Fields::Int(const char* key, int64_t min, int64_t max, Need need) {
  const json* v = Find(key, need);
  if (!v) return std::nullopt;
  std::string range = "from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v->is_number_integer()) {
    Fail(key, "must be an integer " + range + ", not " + TypeName(*v));
    return std::nullopt;
  }
  bool in_range;
  int64_t n = 0;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (in_range) n = static_cast<int64_t>(u);
  } else {
    n = v->get<int64_t>();
    in_range = true;
  }
  if (!in_range || n < min || n > max) {
    Fail(key, "must be an integer " + range);
    return std::nullopt;
  }
  return n;
}

std::optional<bool> Fields::Bool(const char* key, Need need) {
  const json* v = Find(key, need);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    Fail(key, std::string("must be a boolean (true or false), not ") + TypeName(*v));
    return std::nullopt;
  }
  return v->get<bool>();
}

const json* Fields::Object(const char* key, Need need) {
  const json* v = Find(key, need);
  if (!v) return nullptr;
  if (!v->is_object()) {
    Fail(key, std::string("must be a JSON object, not ") + TypeName(*v));
    return nullptr;
  }
  return v;
}

const json* Fields::Value(const char* key) { return Find(key, Need::Optional); }

std::optional<bool> AsBool(const json& j) {
  if (!j.is_boolean()) return std::nullopt;
  return j.get<bool>();
}

std::optional<std::string> AsString(const json& j) {
  if (!j.is_string()) return std::nullopt;
  return j.get<std::string>();
}

bool ParseInt64(std::string_view s, int64_t* out) {
  size_t i = s.size() > 0 && s[0] == '-' ? 1 : 0;
  if (i == s.size() || s.size() > 20) return false;
  for (size_t k = i; k < s.size(); k++)
    if (s[k] < '0' || s[k] > '9') return false;
  std::string copy(s);
  errno = 0;
  long long v = std::strtoll(copy.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

bool ParseUint64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  std::string copy(s);
  errno = 0;
  unsigned long long v = std::strtoull(copy.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) return false;
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace evstream::core
