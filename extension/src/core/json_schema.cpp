// JSON Schema: compile (check every keyword once) and validate (see json_schema.hpp).
#include "evstream/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <vector>

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
  std::optional<std::regex> pattern;
  std::string pattern_source;
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

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw InvalidSchema(path + ": " + what);
}

double Number(const json& v, const std::string& path) {
  if (!v.is_number()) Fail(path, "must be a number");
  return v.get<double>();
}

size_t Count(const json& v, const std::string& path) {
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
    Fail(path, "must be a non-negative integer");
  double d = v.get<double>();
  if (d < 0) Fail(path, "must be a non-negative integer");
  return static_cast<size_t>(d);
}

unsigned TypeName(const json& v, const std::string& path) {
  if (!v.is_string()) Fail(path, "type names must be strings");
  auto it = kTypeNames.find(v.get<std::string>());
  if (it == kTypeNames.end())
    Fail(path, "unknown type \"" + v.get<std::string>() +
                   "\" (use null, boolean, integer, number, string, array or object)");
  return it->second;
}

std::shared_ptr<Node> CompileNode(const json& s, const std::string& path) {
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
      if (!v.is_string()) Fail(at, "must be a string (an ECMAScript regular expression)");
      node->pattern_source = v.get<std::string>();
      try {
        node->pattern.emplace(node->pattern_source, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        Fail(at, "is not a valid regular expression: " + std::string(e.what()));
      }
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

// A value as shown in messages: JSON text, shortened.
std::string Show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
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

Problem Check(const Node& n, const json& v, const std::string& path);

Problem CheckNumber(const Node& n, double d, const json& v, const std::string& path) {
  if (n.minimum && d < *n.minimum) return At(path, Show(v) + " is less than minimum " + ShowNumber(*n.minimum));
  if (n.maximum && d > *n.maximum)
    return At(path, Show(v) + " is greater than maximum " + ShowNumber(*n.maximum));
  if (n.exclusive_minimum && d <= *n.exclusive_minimum)
    return At(path, Show(v) + " is not greater than exclusiveMinimum " + ShowNumber(*n.exclusive_minimum));
  if (n.exclusive_maximum && d >= *n.exclusive_maximum)
    return At(path, Show(v) + " is not less than exclusiveMaximum " + ShowNumber(*n.exclusive_maximum));
  return std::nullopt;
}

Problem CheckString(const Node& n, const std::string& s, const json& v, const std::string& path) {
  if (n.min_length || n.max_length) {
    size_t len = CodePoints(s);
    if (n.min_length && len < *n.min_length)
      return At(path, Show(v) + " is shorter than minLength " + std::to_string(*n.min_length));
    if (n.max_length && len > *n.max_length)
      return At(path, Show(v) + " is longer than maxLength " + std::to_string(*n.max_length));
  }
  if (n.pattern) {
    if (s.size() > kMaxPatternSubject)
      return At(path, "string of " + std::to_string(s.size()) +
                          " bytes is too long to check against pattern (limit " +
                          std::to_string(kMaxPatternSubject) + ")");
    if (!std::regex_search(s, *n.pattern))
      return At(path, Show(v) + " does not match pattern " + json(n.pattern_source).dump());
  }
  if (n.format == Format::kUuid && !IsUuid(s)) return At(path, Show(v) + " is not a valid uuid");
  if (n.format == Format::kDateTime && !IsDateTime(s))
    return At(path, Show(v) + " is not a valid date-time (RFC 3339)");
  if (n.format == Format::kEmail && !IsEmail(s))
    return At(path, Show(v) + " is not a valid email address");
  return std::nullopt;
}

Problem CheckArray(const Node& n, const json& v, const std::string& path) {
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

Problem CheckObject(const Node& n, const json& v, const std::string& path) {
  for (const std::string& name : n.required)
    if (!v.contains(name)) return At(MemberPath(path, name), "required property is missing");
  for (const auto& [name, value] : v.items()) {
    std::string at = MemberPath(path, name);
    auto it = std::lower_bound(n.properties.begin(), n.properties.end(), name,
                               [](const auto& p, const std::string& k) { return p.first < k; });
    if (it != n.properties.end() && it->first == name) {
      if (Problem p = Check(*it->second, value, at)) return p;
    } else if (n.additional == Additional::kDeny) {
      return At(at, "property is not allowed (additionalProperties is false)");
    } else if (n.additional == Additional::kSchema) {
      if (Problem p = Check(*n.additional_schema, value, at)) return p;
    }
  }
  return std::nullopt;
}

Problem Check(const Node& n, const json& v, const std::string& path) {
  if (n.reject_all) return At(path, "no value is allowed here (schema is false)");
  unsigned t = TypeOf(v);
  if (n.types && !(n.types & t))
    return At(path, "expected " + TypeNames(n.types) + ", got " + ActualType(v));
  if (n.enum_values) {
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
  Schema out;
  out.root_ = CompileNode(schema, "schema");
  return out;
}

std::optional<std::string> Schema::Validate(const json& data, std::string_view root) const {
  return Check(*root_, data, std::string(root));
}

}  // namespace evstream::json_schema
