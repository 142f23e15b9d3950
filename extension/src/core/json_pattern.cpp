// JSON Schema `pattern` on RE2 (see json_pattern.hpp).
//
// Why RE2: std::regex backtracks (`^(a+)+$` on 40 characters runs for hours) and recurses per
// character (`^(a*?)*$` on ~10 000 characters overflows the stack), with no way to interrupt it.
// RE2 never backtracks and never recurses on the subject; its memory is capped by max_mem, and
// when its DFA runs out of that memory it falls back to an NFA whose time is bounded by
// subject length x program size. Both factors are bounded here, so one match is short, and the
// validator checks for interrupts between matches.
#include "json_pattern.hpp"

#include <re2/re2.h>

#include "evstream/json_schema.hpp"

namespace evstream::json_schema {
namespace {

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

std::string PatternToRe2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 8);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      // \uXXXX (ECMAScript) -> \x{XXXX} (RE2); any other escape is copied whole.
      if (p[i + 1] == 'u' && i + 6 <= p.size() && IsHex(p[i + 2]) &&
          IsHex(p[i + 3]) && IsHex(p[i + 4]) && IsHex(p[i + 5])) {
        out += "\\x{";
        out.append(p.substr(i + 2, 4));
        out += '}';
        i += 5;
      } else {
        out += c;
        out += p[i + 1];
        i++;
      }
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
    } else if (c == '(' && p.substr(i, 3) == "(?<" && i + 3 < p.size() && p[i + 3] != '=' &&
               p[i + 3] != '!') {
      out += "(?P<";
      i += 2;
      continue;
    }
    out += c;
  }
  return out;
}

size_t PatternSubjectLimit(int program_size) {
  return static_cast<size_t>(kPatternWorkBudget / (program_size > 0 ? program_size : 1));
}

std::shared_ptr<const Pattern> Pattern::Compile(const std::string& source, const std::string& at) {
  using Kind = InvalidSchema::Kind;
  if (source.size() > kMaxPatternLength)
    throw InvalidSchema(at + ": pattern of " + std::to_string(source.size()) +
                            " bytes is longer than the limit of " +
                            std::to_string(kMaxPatternLength),
                        Kind::kTooLarge);
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingUTF8);
  options.set_log_errors(false);  // RE2 would write to the server's stderr
  options.set_max_mem(kPatternMemory);
  options.set_never_capture(true);  // only "does it match" is asked
  std::shared_ptr<Pattern> out(new Pattern());
  out->source_ = source;
  out->re_ = std::make_unique<RE2>(PatternToRe2(source), options);
  if (!out->re_->ok()) {
    if (out->re_->error_code() == RE2::ErrorPatternTooLarge)
      throw InvalidSchema(at + ": pattern is too complex (compiled form over the memory limit)",
                          Kind::kTooLarge);
    throw InvalidSchema(at + ": is not a valid regular expression for RE2 (" + out->re_->error() +
                            "); backreferences and lookaround are not supported",
                        Kind::kPattern);
  }
  out->program_size_ = out->re_->ProgramSize();
  if (out->program_size_ > kMaxPatternProgram)
    throw InvalidSchema(at + ": pattern is too complex (compiled size " +
                            std::to_string(out->program_size_) + ", limit " +
                            std::to_string(kMaxPatternProgram) + ")",
                        Kind::kTooLarge);
  out->subject_limit_ = PatternSubjectLimit(out->program_size_);
  return out;
}

Pattern::~Pattern() = default;

bool Pattern::Search(std::string_view s) const {
  return RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), *re_);
}

}  // namespace evstream::json_schema
