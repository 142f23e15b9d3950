// Errors raised by evstream's own C++ code. Pure C++: no PostgreSQL headers here.
#pragma once

#include <stdexcept>
#include <string>

namespace evstream {

// Our SQLSTATEs (class "EV"), documented in the README. Five characters each.
namespace sqlstate {
inline constexpr const char* kVersionConflict = "EV001";    // expected_version mismatch
inline constexpr const char* kIdempotencyConflict = "EV002";  // key reused with other content
inline constexpr const char* kSchemaInvalid = "EV003";      // data fails the type's JSON schema
inline constexpr const char* kIllegalTransition = "EV004";  // FSM refuses the event
inline constexpr const char* kChannelNotAllowed = "EV005";  // claims do not allow the channel
inline constexpr const char* kUnknownPosition = "EV006";    // read_after from a position not in the log
inline constexpr const char* kUnregisteredType = "EV007";   // require_registered_types refuses the type
inline constexpr const char* kImmutableLog = "EV010";       // UPDATE/DELETE/TRUNCATE on the log
inline constexpr const char* kInsufficientPrivilege = "42501";  // insufficient_privilege
inline constexpr const char* kInvalidParameter = "22023";   // invalid_parameter_value
inline constexpr const char* kInvalidRegularExpression = "2201B";  // invalid_regular_expression
inline constexpr const char* kProgramLimitExceeded = "54000";     // program_limit_exceeded
inline constexpr const char* kNullValue = "22004";          // null_value_not_allowed
inline constexpr const char* kInternal = "XX000";           // internal_error
}  // namespace sqlstate

// An error with an SQLSTATE, a message, and optional detail and hint; the entry guard turns it
// into an ereport(ERROR) once every C++ frame has unwound.
class Error : public std::runtime_error {
 public:
  Error(const char* sqlstate, std::string message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(std::move(message)),
        sqlstate_(sqlstate),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}
  const char* sqlstate() const { return sqlstate_; }
  const std::string& detail() const { return detail_; }
  const std::string& hint() const { return hint_; }

 private:
  const char* sqlstate_;
  std::string detail_;
  std::string hint_;
};

}  // namespace evstream
