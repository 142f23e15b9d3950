// JSON Schema: compile (check every keyword once) and validate (see json_schema.hpp).
#include "evstream/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "json_pattern.hpp"

namespace evstream::json_schema {

using nlohmann::json;

enum TypeBit : unsigned {
  kNull = 1, kBoolean = 2, kInteger = 4, kNumber = 8, kString = 16, kArray = 32, kObject = 64
};
enum class Format { kNone, kUuid, kDateTime, kEmail };
enum class Additional { kAllow, kDeny, kSchema };

// One compiled (sub)schema.
struct Node {
  bool reject_all = false;  // the schema `false`
  unsigned types = 0;       // 0 = any type
  std::vector<std::pair<std::string, std::shared_ptr<Node>>> properties;  // sorted by name
  std::vector<std::string> required;
  Additional additional = Additional::kAllow;
  std::shared_ptr<Node> additional_schema;
  std::optional<std::vector<json>> enum_values;
  std::optional<json> const_value;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::optional<size_t> min_length, max_length, min_items, max_items;
  std::shared_ptr<const Pattern> pattern;
  std::shared_ptr<Node> items;
  Format format = Format::kNone;
};

namespace {

const std::set<std::string> kAnnotations = {"$schema", "$id", "$comment", "title", "description",
                                            "default", "examples", "deprecated", "readOnly",
                                            "writeOnly"};

const std::map<std::string, unsigned> kTypeNames = {
    {"null", kNull},     {"boolean", kBoolean}, {"integer", kInteger}, {"number", kNumber},
    {"string", kString}, {"array", kArray},     {"object", kObject}};

using Kind = InvalidSchema::Kind;

[[noreturn]] void Fail(const std::string& path, const std::string& what, Kind kind = Kind::kInvalid) {
  throw InvalidSchema(path + ": " + what, kind);
}

// The schema document's size and nesting, checked before anything recurses into it (an explicit
// stack here: a hostile document must not overflow ours).
void CheckBounds(const json& schema) {
  size_t values = 1, bytes = 0;
  std::vector<std::pair<const json*, size_t>> stack{{&schema, 1}};
  auto count = [&](const json* v, size_t depth) {
    if (++values > kMaxSchemaValues)
      Fail("schema", "has more than " + std::to_string(kMaxSchemaValues) + " JSON values",
           Kind::kTooLarge);
    stack.emplace_back(v, depth);
  };
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (depth > kMaxSchemaDepth)
      Fail("schema", "is nested deeper than " + std::to_string(kMaxSchemaDepth) + " levels",
           Kind::kTooLarge);
    if (v->is_string()) bytes += v->get_ref<const std::string&>().size();
    if (v->is_object()) {
      for (const auto& [key, sub] : v->items()) {
        bytes += key.size();
        count(&sub, depth + 1);
      }
    } else if (v->is_array()) {
      for (const json& sub : *v) count(&sub, depth + 1);
    }
    if (bytes > kMaxSchemaBytes)
      Fail("schema", "holds more than " + std::to_string(kMaxSchemaBytes) + " bytes of text",
           Kind::kTooLarge);
  }
}

// minimum, maximum and the exclusive forms: any finite number.
double Number(const json& v, const std::string& path) {
  if (!v.is_number()) Fail(path, "must be a number");
  double d = v.get<double>();
  if (!std::isfinite(d)) Fail(path, "must be a finite number");
  return d;
}

// minLength, maxLength, minItems, maxItems: an integer (2 and 2.0 alike) from 0 to kMaxCount.
// Range-checked before any conversion: 1e300 or -1 is refused, never cast.
size_t Count(const json& v, const std::string& path) {
  const std::string what = "must be an integer from 0 to " + std::to_string(kMaxCount);
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(kMaxCount)) Fail(path, what);
    return static_cast<size_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0 || i > kMaxCount) Fail(path, what);
    return static_cast<size_t>(i);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d || d < 0 || d > static_cast<double>(kMaxCount))
      Fail(path, what);
    return static_cast<size_t>(d);
  }
  Fail(path, what);
}

unsigned TypeName(const json& v, const std::string& path) {
  if (!v.is_string()) Fail(path, "type names must be strings");
  auto it = kTypeNames.find(v.get<std::string>());
  if (it == kTypeNames.end())
    Fail(path, "unknown type \"" + v.get<std::string>() +
                   "\" (use null, boolean, integer, number, string, array or object)");
  return it->second;
}

struct Compiler {
  size_t patterns = 0;
  std::shared_ptr<Node> CompileNode(const json& s, const std::string& path);
};

std::shared_ptr<Node> Compiler::CompileNode(const json& s, const std::string& path) {
  auto node = std::make_shared<Node>();
  if (s.is_boolean()) {
    node->reject_all = !s.get<bool>();
    return node;
  }
  if (!s.is_object()) Fail(path, "a schema must be an object or a boolean");
  for (const auto& [key, v] : s.items()) {
    std::string at = MemberPath(path, key);
    if (kAnnotations.count(key)) continue;
    if (key == "type") {
      if (v.is_array()) {
        if (v.empty()) Fail(at, "must not be an empty array");
        for (const json& t : v) node->types |= TypeName(t, at);
      } else {
        node->types = TypeName(v, at);
      }
    } else if (key == "properties") {
      if (!v.is_object()) Fail(at, "must be an object of schemas");
      for (const auto& [name, sub] : v.items())
        node->properties.emplace_back(name, CompileNode(sub, MemberPath(at, name)));
    } else if (key == "required") {
      if (!v.is_array()) Fail(at, "must be an array of property names");
      for (const json& name : v) {
        if (!name.is_string()) Fail(at, "must contain only strings");
        node->required.push_back(name.get<std::string>());
      }
    } else if (key == "additionalProperties") {
      if (v.is_boolean()) {
        node->additional = v.get<bool>() ? Additional::kAllow : Additional::kDeny;
      } else {
        node->additional = Additional::kSchema;
        node->additional_schema = CompileNode(v, at);
      }
    } else if (key == "enum") {
      if (!v.is_array() || v.empty()) Fail(at, "must be a non-empty array");
      node->enum_values = v.get<std::vector<json>>();
    } else if (key == "const") {
      node->const_value = v;
    } else if (key == "minimum") {
      node->minimum = Number(v, at);
    } else if (key == "maximum") {
      node->maximum = Number(v, at);
    } else if (key == "exclusiveMinimum") {
      node->exclusive_minimum = Number(v, at);
    } else if (key == "exclusiveMaximum") {
      node->exclusive_maximum = Number(v, at);
    } else if (key == "minLength") {
      node->min_length = Count(v, at);
    } else if (key == "maxLength") {
      node->max_length = Count(v, at);
    } else if (key == "minItems") {
      node->min_items = Count(v, at);
    } else if (key == "maxItems") {
      node->max_items = Count(v, at);
    } else if (key == "pattern") {
      if (!v.is_string()) Fail(at, "must be a string (a regular expression)");
      if (++patterns > kMaxPatterns)
        Fail(at, "too many patterns in one schema (limit " + std::to_string(kMaxPatterns) + ")",
             Kind::kTooLarge);
      node->pattern = Pattern::Compile(v.get<std::string>(), at);
    } else if (key == "items") {
      if (v.is_array()) Fail(at, "must be one schema (tuple form is not supported)");
      node->items = CompileNode(v, at);
    } else if (key == "format") {
      std::string f = v.is_string() ? v.get<std::string>() : "";
      if (f == "uuid") node->format = Format::kUuid;
      else if (f == "date-time") node->format = Format::kDateTime;
      else if (f == "email") node->format = Format::kEmail;
      else Fail(at, "must be \"uuid\", \"date-time\" or \"email\"");
    } else {
      Fail(path, "unknown keyword \"" + key + "\"");
    }
  }
  if (node->min_length && node->max_length && *node->min_length > *node->max_length)
    Fail(path, "minLength is greater than maxLength");
  if (node->min_items && node->max_items && *node->min_items > *node->max_items)
    Fail(path, "minItems is greater than maxItems");
  if (node->minimum && node->maximum && *node->minimum > *node->maximum)
    Fail(path, "minimum is greater than maximum");
  std::sort(node->properties.begin(), node->properties.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return node;
}

std::string Dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// Appends v's JSON text to out, stopping soon after out passes `limit` bytes: a huge or deeply
// nested value costs no more than what is shown (recursion ends within `limit` levels, since
// each level adds a byte).
void Brief(const json& v, std::string* out, size_t limit) {
  if (out->size() > limit) return;
  if (v.is_object() || v.is_array()) {
    bool object = v.is_object();
    *out += object ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (out->size() > limit) return;
      if (!first) *out += ',';
      first = false;
      if (object) {
        *out += Dump(json(it.key().substr(0, limit + 1)));
        *out += ':';
      }
      Brief(*it, out, limit);
    }
    *out += object ? '}' : ']';
  } else if (v.is_string()) {
    *out += Dump(json(v.get_ref<const std::string&>().substr(0, limit + 1)));
  } else {
    *out += Dump(v);
  }
}

// A value as shown in messages: JSON text, shortened (never cut inside a UTF-8 sequence).
std::string Show(const json& v) {
  std::string s;
  Brief(v, &s, 60);
  if (s.size() > 60) {
    size_t cut = 57;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;
    s = s.substr(0, cut) + "...";
  }
  return s;
}

std::string ShowNumber(double d) { return Show(json(d == std::floor(d) && std::fabs(d) < 1e15 ? json(static_cast<int64_t>(d)) : json(d))); }

bool IsInteger(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

unsigned TypeOf(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return kNull;
    case json::value_t::boolean: return kBoolean;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return IsInteger(v) ? (kInteger | kNumber) : kNumber;
    case json::value_t::string: return kString;
    case json::value_t::array: return kArray;
    default: return kObject;
  }
}

std::string TypeNames(unsigned types) {
  std::string out;
  for (const auto& [name, bit] : {std::pair<const char*, unsigned>{"null", kNull},
                                  {"boolean", kBoolean}, {"integer", kInteger},
                                  {"number", kNumber}, {"string", kString}, {"array", kArray},
                                  {"object", kObject}}) {
    if (types & bit) out += (out.empty() ? "" : " or ") + std::string(name);
  }
  return out;
}

const char* ActualType(const json& v) {
  unsigned t = TypeOf(v);
  if (t & kInteger) return "integer";
  if (t & kNumber) return "number";
  switch (t) {
    case kNull: return "null";
    case kBoolean: return "boolean";
    case kString: return "string";
    case kArray: return "array";
    default: return "object";
  }
}

// Length in Unicode code points of UTF-8 text.
size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) n++;
  return n;
}

using Problem = std::optional<std::string>;

Problem At(const std::string& path, const std::string& what) { return path + ": " + what; }

// One validation: walks data where the schema leads, counting work and polling for interrupts
// every kPollEvery units (a node is one unit, a string one per 64 bytes, a match one per 64
// of bytes x program size: the bound of its worst case).
class Walk {
 public:
  explicit Walk(const std::function<void()>& check_interrupts) : poll_(check_interrupts) {}
  Problem Check(const Node& n, const json& v, const std::string& path);

 private:
  static constexpr size_t kPollEvery = 4096;
  void Spend(size_t units) {
    work_ += units;
    if (work_ >= kPollEvery) {
      work_ = 0;
      if (poll_) poll_();
    }
  }
  Problem CheckNumber(const Node& n, double d, const json& v, const std::string& path);
  Problem CheckString(const Node& n, const std::string& s, const json& v, const std::string& path);
  Problem CheckArray(const Node& n, const json& v, const std::string& path);
  Problem CheckObject(const Node& n, const json& v, const std::string& path);

  const std::function<void()>& poll_;
  size_t work_ = 0;
};

Problem Walk::CheckNumber(const Node& n, double d, const json& v, const std::string& path) {
  if (n.minimum && d < *n.minimum) return At(path, Show(v) + " is less than minimum " + ShowNumber(*n.minimum));
  if (n.maximum && d > *n.maximum)
    return At(path, Show(v) + " is greater than maximum " + ShowNumber(*n.maximum));
  if (n.exclusive_minimum && d <= *n.exclusive_minimum)
    return At(path, Show(v) + " is not greater than exclusiveMinimum " + ShowNumber(*n.exclusive_minimum));
  if (n.exclusive_maximum && d >= *n.exclusive_maximum)
    return At(path, Show(v) + " is not less than exclusiveMaximum " + ShowNumber(*n.exclusive_maximum));
  return std::nullopt;
}

Problem Walk::CheckString(const Node& n, const std::string& s, const json& v, const std::string& path) {
  if (n.min_length || n.max_length) {
    Spend(s.size() / 64);
    size_t len = CodePoints(s);
    if (n.min_length && len < *n.min_length)
      return At(path, Show(v) + " is shorter than minLength " + std::to_string(*n.min_length));
    if (n.max_length && len > *n.max_length)
      return At(path, Show(v) + " is longer than maxLength " + std::to_string(*n.max_length));
  }
  if (n.pattern) {
    const Pattern& p = *n.pattern;
    if (s.size() > p.subject_limit())
      return At(path, "string of " + std::to_string(s.size()) +
                          " bytes is too long to check against pattern " + Dump(json(p.source())) +
                          " (limit " + std::to_string(p.subject_limit()) + " bytes)");
    Spend(s.size() * static_cast<size_t>(p.program_size()) / 64);
    if (!p.Search(s)) return At(path, Show(v) + " does not match pattern " + Dump(json(p.source())));
  }
  if (n.format == Format::kUuid && !IsUuid(s)) return At(path, Show(v) + " is not a valid uuid");
  if (n.format == Format::kDateTime && !IsDateTime(s))
    return At(path, Show(v) + " is not a valid date-time (RFC 3339)");
  if (n.format == Format::kEmail && !IsEmail(s))
    return At(path, Show(v) + " is not a valid email address");
  return std::nullopt;
}

Problem Walk::CheckArray(const Node& n, const json& v, const std::string& path) {
  if (n.min_items && v.size() < *n.min_items)
    return At(path, "array has " + std::to_string(v.size()) + " items, fewer than minItems " +
                        std::to_string(*n.min_items));
  if (n.max_items && v.size() > *n.max_items)
    return At(path, "array has " + std::to_string(v.size()) + " items, more than maxItems " +
                        std::to_string(*n.max_items));
  if (n.items)
    for (size_t i = 0; i < v.size(); i++)
      if (Problem p = Check(*n.items, v[i], path + "[" + std::to_string(i) + "]")) return p;
  return std::nullopt;
}

Problem Walk::CheckObject(const Node& n, const json& v, const std::string& path) {
  for (const std::string& name : n.required)
    if (!v.contains(name)) return At(MemberPath(path, name), "required property is missing");
  for (const auto& [name, value] : v.items()) {
    auto it = std::lower_bound(n.properties.begin(), n.properties.end(), name,
                               [](const auto& p, const std::string& k) { return p.first < k; });
    if (it != n.properties.end() && it->first == name) {
      if (Problem p = Check(*it->second, value, MemberPath(path, name))) return p;
    } else if (n.additional == Additional::kDeny) {
      return At(MemberPath(path, name), "property is not allowed (additionalProperties is false)");
    } else if (n.additional == Additional::kSchema) {
      if (Problem p = Check(*n.additional_schema, value, MemberPath(path, name))) return p;
    } else {
      Spend(1);
    }
  }
  return std::nullopt;
}

// Recursion here follows the schema (depth at most kMaxSchemaDepth), never the data alone.
Problem Walk::Check(const Node& n, const json& v, const std::string& path) {
  Spend(1);
  if (n.reject_all) return At(path, "no value is allowed here (schema is false)");
  unsigned t = TypeOf(v);
  if (n.types && !(n.types & t))
    return At(path, "expected " + TypeNames(n.types) + ", got " + ActualType(v));
  if (n.enum_values) {
    Spend(n.enum_values->size());
    bool found = false;
    for (const json& e : *n.enum_values)
      if (e == v || (e.is_number() && v.is_number() && e.get<double>() == v.get<double>())) found = true;
    if (!found) return At(path, Show(v) + " is not one of " + Show(json(*n.enum_values)));
  }
  if (n.const_value) {
    const json& c = *n.const_value;
    bool same = c == v || (c.is_number() && v.is_number() && c.get<double>() == v.get<double>());
    if (!same) return At(path, Show(v) + " is not equal to const " + Show(c));
  }
  if (v.is_number()) return CheckNumber(n, v.get<double>(), v, path);
  if (v.is_string()) return CheckString(n, v.get_ref<const std::string&>(), v, path);
  if (v.is_array()) return CheckArray(n, v, path);
  if (v.is_object()) return CheckObject(n, v, path);
  return std::nullopt;
}

}  // namespace

Schema Schema::Compile(const json& schema) {
  CheckBounds(schema);
  Schema out;
  Compiler compiler;
  out.root_ = compiler.CompileNode(schema, "schema");
  return out;
}

std::optional<std::string> Schema::Validate(const json& data, std::string_view root,
                                            const std::function<void()>& check_interrupts) const {
  Walk walk(check_interrupts);
  return walk.Check(*root_, data, std::string(root));
}

}  // namespace evstream::json_schema
