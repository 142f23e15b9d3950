// JSON Schema validator against hostile schemas and documents: patterns run on RE2 in linear
// time (the catastrophic cases of std::regex finish at once), patterns RE2 cannot run are
// refused, schemas and numeric keywords are bounded, and validation polls for interrupts.
#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "evstream/json_schema.hpp"

namespace js = evstream::json_schema;
using nlohmann::json;
using Kind = js::InvalidSchema::Kind;

namespace {

js::Schema S(const json& schema) { return js::Schema::Compile(schema); }

// The refusal's kind and message, or "compiled".
std::pair<Kind, std::string> Refusal(const json& schema) {
  try {
    js::Schema::Compile(schema);
  } catch (const js::InvalidSchema& e) {
    return {e.kind(), e.what()};
  }
  return {Kind::kInvalid, "compiled"};
}

double Seconds(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool ValidUtf8(const std::string& s) {
  try {
    return json::accept(json(s).dump());
  } catch (const json::exception&) {
    return false;  // dump() refuses invalid UTF-8
  }
}

}  // namespace

TEST(JsonSchemaPattern, nested_quantifier_on_40_chars_finishes_at_once) {
  auto schema = S({{"pattern", "^(a+)+$"}});
  std::optional<std::string> problem;
  double s = Seconds([&] { problem = schema.Validate(json(std::string(40, 'a') + "!")); });
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("does not match pattern \"^(a+)+$\""), std::string::npos) << *problem;
  EXPECT_LT(s, 1.0);  // std::regex: hours
  EXPECT_FALSE(schema.Validate(json(std::string(40, 'a'))));
}

TEST(JsonSchemaPattern, lazy_star_in_star_on_20000_chars_neither_overflows_nor_stalls) {
  auto schema = S({{"pattern", "^(a*?)*$"}});
  double s = Seconds([&] {
    EXPECT_FALSE(schema.Validate(json(std::string(20000, 'a'))));
    EXPECT_TRUE(schema.Validate(json(std::string(20000, 'a') + "b")));
  });
  EXPECT_LT(s, 1.0);  // std::regex: a stack overflow near 10 000 characters
}

TEST(JsonSchemaPattern, worst_case_match_at_the_subject_limit_stays_short) {
  // A pattern whose DFA explodes, so RE2 falls back to its NFA: the slowest case per byte.
  std::string pattern = "(a|b)*a(a|b){200}c";
  auto schema = S({{"pattern", pattern}});
  std::string subject;
  // The limit for this pattern, found from the message for a string one byte too long.
  auto over = schema.Validate(json(std::string(20'000'000, 'a')));
  ASSERT_TRUE(over);
  size_t at = over->find("(limit ");
  ASSERT_NE(at, std::string::npos) << *over;
  size_t limit = std::stoul(over->substr(at + 7));
  for (size_t i = 0; i < limit; i++) subject += "ab"[i % 3 == 0];
  double s = Seconds([&] { EXPECT_TRUE(schema.Validate(json(subject))); });
  EXPECT_LT(s, 2.0);  // about 0.1 s on an idle machine; the bound keeps every match this short
  EXPECT_TRUE(schema.Validate(json(subject + "a")).value().find("too long to check against pattern") !=
              std::string::npos);
}

TEST(JsonSchemaPattern, subject_limit_follows_program_size) {
  EXPECT_EQ(js::PatternSubjectLimit(1), static_cast<size_t>(js::kPatternWorkBudget));
  EXPECT_EQ(js::PatternSubjectLimit(js::kMaxPatternProgram),
            static_cast<size_t>(js::kPatternWorkBudget / js::kMaxPatternProgram));
  EXPECT_GE(js::PatternSubjectLimit(js::kMaxPatternProgram), 16000u);  // today's 10 000 and more
}

TEST(JsonSchemaPattern, backreferences_and_lookaround_are_refused_as_patterns) {
  for (const char* p : {"(a)\\1", "(?=a)a", "(?!a)b", "(?<=a)b", "(?<!a)b", "\\k<x>"}) {
    auto [kind, message] = Refusal({{"properties", {{"code", {{"pattern", p}}}}}});
    EXPECT_EQ(kind, Kind::kPattern) << p << ": " << message;
    EXPECT_EQ(message.rfind("schema.properties.code.pattern: is not a valid regular expression for RE2", 0), 0u)
        << message;
    EXPECT_NE(message.find("backreferences and lookaround are not supported"), std::string::npos);
  }
  EXPECT_EQ(Refusal({{"pattern", "(("}}).first, Kind::kPattern);
  EXPECT_EQ(Refusal({{"pattern", 7}}).second, "schema.pattern: must be a string (a regular expression)");
}

TEST(JsonSchemaPattern, ecmascript_forms_are_translated) {
  EXPECT_EQ(js::PatternToRe2("^\\u00e9\\d$"), "^\\x{00e9}\\d$");
  EXPECT_EQ(js::PatternToRe2("(?<year>\\d{4})"), "(?P<year>\\d{4})");
  EXPECT_EQ(js::PatternToRe2("[(?<]\\\\u0041"), "[(?<]\\\\u0041");  // in a class; an escaped backslash
  EXPECT_EQ(js::PatternToRe2("(?<=a)"), "(?<=a)");                 // left for RE2 to refuse
  auto schema = S({{"pattern", "^\\u00e9(?<n>[0-9]+)$"}});
  EXPECT_FALSE(schema.Validate(json("\xc3\xa9" "42")));
  EXPECT_TRUE(schema.Validate(json("e42")));
  // Code points, not bytes: one character.
  EXPECT_FALSE(S({{"pattern", "^.$"}}).Validate(json("\xc3\xa9")));
}

TEST(JsonSchemaBounds, pattern_length_program_size_and_count_are_bounded) {
  auto [kind, message] = Refusal({{"pattern", std::string(js::kMaxPatternLength + 1, 'a')}});
  EXPECT_EQ(kind, Kind::kTooLarge);
  EXPECT_NE(message.find("longer than the limit of 4096"), std::string::npos) << message;

  auto big = Refusal({{"pattern", "((a|b|c|d)x){1000}"}});
  EXPECT_EQ(big.first, Kind::kTooLarge) << big.second;
  EXPECT_NE(big.second.find("pattern is too complex"), std::string::npos) << big.second;

  json props = json::object();
  for (size_t i = 0; i <= js::kMaxPatterns; i++) props["p" + std::to_string(i)] = {{"pattern", "^x"}};
  auto many = Refusal({{"properties", props}});
  EXPECT_EQ(many.first, Kind::kTooLarge);
  EXPECT_NE(many.second.find("too many patterns in one schema (limit 64)"), std::string::npos);
  props.erase("p0");
  EXPECT_EQ(Refusal({{"properties", props}}).second, "compiled");
}

TEST(JsonSchemaBounds, size_and_nesting_are_bounded) {
  json deep = json::object();
  for (size_t i = 0; i < js::kMaxSchemaDepth; i++) deep = {{"items", deep}};
  auto [kind, message] = Refusal(deep);
  EXPECT_EQ(kind, Kind::kTooLarge);
  EXPECT_EQ(message, "schema: is nested deeper than 64 levels");
  json ok = json::object();
  for (size_t i = 0; i + 1 < js::kMaxSchemaDepth; i++) ok = {{"items", ok}};
  EXPECT_EQ(Refusal(ok).second, "compiled");

  json values = json::array();
  for (size_t i = 0; i < js::kMaxSchemaValues; i++) values.push_back(i);
  EXPECT_EQ(Refusal({{"enum", values}}).second, "schema: has more than 10000 JSON values");
  EXPECT_EQ(Refusal({{"const", std::string(js::kMaxSchemaBytes + 1, 'x')}}).second,
            "schema: holds more than 262144 bytes of text");
}

TEST(JsonSchemaBounds, numeric_keywords_are_range_checked_before_any_cast) {
  const std::string range = "must be an integer from 0 to 2147483647";
  for (const char* k : {"minLength", "maxLength", "minItems", "maxItems"}) {
    for (json bad : {json(1e300), json(-1), json(-0.5), json(1.5), json(2147483648.0),
                     json(int64_t{2147483648}), json(std::numeric_limits<uint64_t>::max()),
                     json(std::numeric_limits<double>::infinity()),
                     json(std::numeric_limits<double>::quiet_NaN()), json("3"), json(nullptr)}) {
      auto [kind, message] = Refusal({{k, bad}});
      EXPECT_EQ(kind, Kind::kInvalid);
      EXPECT_EQ(message, "schema." + std::string(k) + ": " + range) << bad.dump();
    }
    EXPECT_EQ(Refusal({{k, 2.0}}).second, "compiled");
    EXPECT_EQ(Refusal({{k, 2147483647}}).second, "compiled");
  }
  EXPECT_EQ(Refusal({{"minimum", std::numeric_limits<double>::infinity()}}).second,
            "schema.minimum: must be a finite number");
  EXPECT_EQ(Refusal({{"maximum", 1e300}}).second, "compiled");
  EXPECT_TRUE(S({{"maxLength", 2.0}}).Validate(json("abc")));
}

TEST(JsonSchemaInterrupts, validation_polls_and_a_throwing_poll_abandons_it) {
  auto schema = S({{"type", "array"}, {"items", {{"type", "integer"}}}});
  json data = json::array();
  for (int i = 0; i < 100000; i++) data.push_back(i);
  int polls = 0;
  std::function<void()> count = [&] { polls++; };
  EXPECT_FALSE(schema.Validate(data, "data", count));
  EXPECT_GE(polls, 10);
  std::function<void()> cancel = [] { throw std::runtime_error("canceling statement due to user request"); };
  EXPECT_THROW(schema.Validate(data, "data", cancel), std::runtime_error);
}

TEST(JsonSchemaInterrupts, long_strings_against_a_pattern_count_as_work) {
  auto schema = S({{"type", "array"}, {"items", {{"pattern", "^[a-z]+$"}}}});
  json data = json::array();
  for (int i = 0; i < 20; i++) data.push_back(std::string(100000, 'q'));
  int polls = 0;
  std::function<void()> count = [&] { polls++; };
  EXPECT_FALSE(schema.Validate(data, "data", count));
  EXPECT_GE(polls, 20);
}

TEST(JsonSchemaMessages, huge_and_deep_values_are_shown_briefly) {
  json deep = json::array();
  for (int i = 0; i < 200000; i++) deep = json::array({std::move(deep)});
  auto p = S({{"type", "string"}}).Validate(deep);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "data: expected string, got array");
  auto e = S({{"enum", {1}}}).Validate(deep);
  ASSERT_TRUE(e);
  EXPECT_LT(e->size(), 200u);
  EXPECT_NE(e->find("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[..."), std::string::npos) << *e;
}

TEST(JsonSchemaMessages, shortened_values_are_never_cut_inside_a_character) {
  std::string accents;
  for (int i = 0; i < 100; i++) accents += "\xc3\xa9";
  for (size_t pad = 0; pad < 4; pad++) {
    auto p = S({{"maxLength", 3}}).Validate(json(std::string(pad, 'x') + accents));
    ASSERT_TRUE(p);
    EXPECT_TRUE(ValidUtf8(*p)) << pad;
  }
}
