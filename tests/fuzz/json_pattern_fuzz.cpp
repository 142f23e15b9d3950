// JSON Schema `pattern` on RE2 (extension/src/core/json_pattern.cpp), the regex engine fuzzed at
// the edge where we call it. Input: "<pattern>\n<subject>", raw bytes (invalid UTF-8 included).
// Properties: a pattern compiles or is refused with InvalidSchema; a match returns (in linear
// time: -timeout catches anything else); messages are valid UTF-8; the ECMAScript translation
// leaves patterns without escapes and groups unchanged.
#include <cstdint>

#include "evstream/json_schema.hpp"
#include "fuzz_util.hpp"

namespace js = evstream::json_schema;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Split(fuzz::View(data, size), '\n', 2);
  const std::string& pattern = parts[0];
  std::string subject = parts.size() > 1 ? parts[1] : "";
  if (pattern.find('\\') == std::string::npos && pattern.find("(?<") == std::string::npos)
    FUZZ_CHECK(js::PatternToRe2(pattern) == pattern, "translation changed a plain pattern");
  try {
    js::Schema schema = js::Schema::Compile(json{{"pattern", pattern}});
    // The subject as is, and repeated (a long subject is where backtracking engines blow up).
    for (int round = 0; round < 2; round++) {
      auto problem = schema.Validate(json(subject));
      if (problem) FUZZ_CHECK(fuzz::IsUtf8(*problem), "message is not valid UTF-8");
      if (subject.empty() || subject.size() > 4096) break;
      std::string longer;
      while (longer.size() < 20000) longer += subject;
      subject = longer;
    }
  } catch (const js::InvalidSchema& e) {
    FUZZ_CHECK(fuzz::IsUtf8(e.what()) || !fuzz::IsUtf8(pattern), "refusal is not valid UTF-8");
  }
  return 0;
}
