// The extension's input rules for events (extension/src/core/validate.cpp). Input: one selector
// byte, then the value. Properties: each rule returns; what Channel and CreatedBy accept has the
// documented shape; every message is valid UTF-8 when the value is.
#include <cstdint>

#include "evstream/validate.hpp"
#include "fuzz_util.hpp"

namespace v = evstream::validate;

namespace {
bool NameChars(std::string_view s) {
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::string_view("_-.:@+=").find(c) != std::string_view::npos))
      return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view value = fuzz::View(data + 1, size - 1);
  std::optional<std::string> problem;
  switch (data[0] % 6) {
    case 0:
      problem = v::Channel("channel", value);
      if (!problem) {
        FUZZ_CHECK(value.rfind("project:", 0) == 0 || value.rfind("user:", 0) == 0 ||
                       value.rfind("channel:", 0) == 0,
                   "accepted channel without a prefix");
        FUZZ_CHECK(NameChars(value) && value.size() <= v::kMaxName + 8, "accepted channel with odd characters");
        FUZZ_CHECK(value.find('*') == std::string_view::npos, "accepted a channel pattern");
      }
      break;
    case 1:
      problem = v::Identifier("aggregate_id", value);
      if (!problem) FUZZ_CHECK(!value.empty() && value.size() <= v::kMaxName, "identifier bounds");
      break;
    case 2:
      problem = v::EventType("event_type", value);
      if (!problem) FUZZ_CHECK(NameChars(value) && value.size() <= v::kMaxName, "event type shape");
      break;
    case 3:
      problem = v::CreatedBy("created_by", value);
      if (!problem)
        FUZZ_CHECK(value == "system" || ((value.rfind("user:", 0) == 0 || value.rfind("agent:", 0) == 0) &&
                                         NameChars(value)),
                   "created_by shape");
      break;
    case 4:
      problem = v::IdempotencyKey("idempotency_key", value);
      if (!problem) FUZZ_CHECK(!value.empty() && value.size() <= v::kMaxIdempotencyKey, "key bounds");
      break;
    default:
      problem = v::DisplayRole("display.role", value);
      break;
  }
  if (problem && fuzz::IsUtf8(value)) {
    // Messages quote at most a prefix of the value: a cut must not split a character.
    FUZZ_CHECK(fuzz::IsUtf8(*problem), "message is not valid UTF-8");
  }
  return 0;
}
