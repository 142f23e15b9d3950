// The extension's JSON Schema validator (extension/src/core): a schema and a document, both
// hostile. Input: "<schema JSON>\n<data JSON>". Properties: Compile either succeeds or throws
// InvalidSchema; Validate returns, with a message in valid UTF-8; the interrupt poll is called
// (a long walk stays cancellable). Super-linear time is a finding through -timeout.
#include <cstdint>
#include <functional>

#include "evstream/json_schema.hpp"
#include "fuzz_util.hpp"

namespace js = evstream::json_schema;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Split(fuzz::View(data, size), '\n', 2);
  json schema = json::parse(parts[0], nullptr, false);
  if (schema.is_discarded()) return 0;
  json doc = parts.size() > 1 ? json::parse(parts[1], nullptr, false) : json::object();
  if (doc.is_discarded()) return 0;
  try {
    js::Schema compiled = js::Schema::Compile(schema);
    size_t polls = 0;
    std::function<void()> poll = [&] { polls++; };
    auto problem = compiled.Validate(doc, "data", poll);
    if (problem) {
      FUZZ_CHECK(fuzz::IsUtf8(*problem), "validation message is not valid UTF-8");
      FUZZ_CHECK(problem->rfind("data", 0) == 0, "validation message does not start with the path");
    }
    // The same schema compiled twice judges the same way.
    FUZZ_CHECK(js::Schema::Compile(schema).Validate(doc) == problem, "validation is not deterministic");
  } catch (const js::InvalidSchema& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("schema", 0) == 0, "refusal does not name the place");
  }
  return 0;
}
