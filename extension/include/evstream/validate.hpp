// Input rules for events, as pure C++ (unit-tested without PostgreSQL).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace evstream::validate {

inline constexpr size_t kMaxIdempotencyKey = 255;
inline constexpr size_t kMaxName = 200;

// Each returns an error message naming the field, or nullopt when the value is acceptable.
// `field` is the name shown to the user (e.g. "channel" or "events[3].channel").
std::optional<std::string> Channel(std::string_view field, std::string_view value);
std::optional<std::string> Identifier(std::string_view field, std::string_view value);
std::optional<std::string> EventType(std::string_view field, std::string_view value);
std::optional<std::string> CreatedBy(std::string_view field, std::string_view value);
std::optional<std::string> IdempotencyKey(std::string_view field, std::string_view value);
std::optional<std::string> DisplayRole(std::string_view field, std::string_view value);

}  // namespace evstream::validate
