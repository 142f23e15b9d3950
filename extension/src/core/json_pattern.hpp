// JSON Schema `pattern` on RE2: linear-time matching with bounded memory (see json_schema.hpp).
// Internal to the core; the RE2 header stays out of the public one.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace evstream::json_schema {

class Pattern {
 public:
  // Throws InvalidSchema (kind kPattern when RE2 refuses the pattern, kTooLarge past a bound);
  // `at` names the place in the schema.
  static std::shared_ptr<const Pattern> Compile(const std::string& source, const std::string& at);
  ~Pattern();

  const std::string& source() const { return source_; }
  int program_size() const { return program_size_; }
  // Longest subject Search accepts (bytes); longer strings are not matched.
  size_t subject_limit() const { return subject_limit_; }
  // Unanchored search, as JSON Schema says. `s` must be at most subject_limit() bytes.
  bool Search(std::string_view s) const;

 private:
  Pattern() = default;
  std::string source_;
  std::unique_ptr<re2::RE2> re_;
  int program_size_ = 0;
  size_t subject_limit_ = 0;
};

}  // namespace evstream::json_schema
