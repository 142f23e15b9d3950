// Input rules for events (see validate.hpp). Kept free of PostgreSQL so the rules are unit-tested.
#include "evstream/validate.hpp"

namespace evstream::validate {
namespace {

std::string Named(std::string_view field, std::string_view what) {
  std::string out(field);
  out += ' ';
  out += what;
  return out;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':' || c == '@' || c == '+' || c == '=';
}

// A token usable in channel ids and creator names: printable, no spaces, no '*' or ','.
std::optional<std::string> Token(std::string_view field, std::string_view value,
                                 std::string_view what) {
  if (value.empty()) return Named(field, std::string("must have a non-empty ") + std::string(what));
  if (value.size() > kMaxName) return Named(field, "is longer than 200 characters");
  for (char c : value)
    if (!IsNameChar(c))
      return Named(field, std::string(what) + " may contain only letters, digits and _-.:@+=");
  return std::nullopt;
}

// At most n bytes of value, never ending inside a UTF-8 sequence (messages stay valid UTF-8).
std::string_view Prefix(std::string_view value, size_t n) {
  if (value.size() <= n) return value;
  while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) n--;
  return value.substr(0, n);
}

}  // namespace

std::optional<std::string> Channel(std::string_view field, std::string_view value) {
  for (std::string_view prefix : {"project:", "user:", "channel:"}) {
    if (value.substr(0, prefix.size()) == prefix)
      return Token(field, value.substr(prefix.size()), "id after the prefix");
  }
  return Named(field, "must be project:<id>, user:<id> or channel:<id>, got \"" +
                          std::string(Prefix(value, 60)) + "\"");
}

std::optional<std::string> Identifier(std::string_view field, std::string_view value) {
  if (value.empty()) return Named(field, "must not be empty");
  if (value.size() > kMaxName) return Named(field, "is longer than 200 characters");
  for (unsigned char c : value)
    if (c < 0x20 || c == 0x7f) return Named(field, "must not contain control characters");
  return std::nullopt;
}

std::optional<std::string> EventType(std::string_view field, std::string_view value) {
  if (value.empty()) return Named(field, "must not be empty");
  if (value.size() > kMaxName) return Named(field, "is longer than 200 characters");
  for (char c : value) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':';
    if (!ok) return Named(field, "may contain only letters, digits and _-.: (e.g. document.created)");
  }
  return std::nullopt;
}

std::optional<std::string> CreatedBy(std::string_view field, std::string_view value) {
  if (value == "system") return std::nullopt;
  for (std::string_view prefix : {"user:", "agent:"}) {
    if (value.substr(0, prefix.size()) == prefix)
      return Token(field, value.substr(prefix.size()), "name after the prefix");
  }
  return Named(field, "must be user:<id>, agent:<name> or system");
}

std::optional<std::string> IdempotencyKey(std::string_view field, std::string_view value) {
  if (value.empty()) return Named(field, "must not be empty (pass NULL for none)");
  if (value.size() > kMaxIdempotencyKey) return Named(field, "is longer than 255 characters");
  return std::nullopt;
}

std::optional<std::string> DisplayRole(std::string_view field, std::string_view value) {
  if (value == "user" || value == "assistant" || value == "system") return std::nullopt;
  return Named(field, "must be \"user\", \"assistant\" or \"system\"");
}

}  // namespace evstream::validate
