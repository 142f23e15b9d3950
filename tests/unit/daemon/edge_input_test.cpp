// The daemon's edge for outside input: typed accessors, JSON bodies with the offset of the
// error, strict number parsing, safe JSON out, and the exception boundary of callbacks.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/guard.hpp"
#include "core/input.hpp"
#include "core/json_out.hpp"
#include "http/request.hpp"

using namespace evstream;
using nlohmann::json;

TEST(Fields, typed_reads_return_values_of_the_right_type) {
  json j = {{"s", "x"}, {"n", 7}, {"b", true}, {"o", {{"k", 1}}}, {"z", nullptr}};
  core::Fields f(j);
  EXPECT_EQ(f.String("s"), "x");
  EXPECT_EQ(f.Int("n", 0, 10), 7);
  EXPECT_EQ(f.Bool("b"), true);
  ASSERT_NE(f.Object("o"), nullptr);
  EXPECT_EQ(f.String("z"), std::nullopt) << "null reads as absent";
  EXPECT_EQ(f.String("missing"), std::nullopt);
  EXPECT_TRUE(f.ok());
}

TEST(Fields, wrong_types_are_reported_with_the_field_path_and_never_throw) {
  json j = {{"isTyping", "x"}, {"done", "yes"}};
  core::Fields f(j, "data.");
  EXPECT_EQ(f.Bool("isTyping"), std::nullopt);
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(f.field(), "data.isTyping");
  EXPECT_EQ(f.error(), "data.isTyping must be a boolean (true or false), not a string");
  EXPECT_EQ(f.Bool("done"), std::nullopt);
  EXPECT_EQ(f.field(), "data.isTyping") << "the first problem is kept";
}

TEST(Fields, every_accessor_refuses_every_other_type) {
  const json values[] = {json("s"), json(1), json(1.5), json(true), json::array(), json::object()};
  for (const auto& v : values) {
    json j = {{"f", v}};
    { core::Fields f(j); f.String("f"); EXPECT_EQ(f.ok(), v.is_string()) << v; }
    { core::Fields f(j); f.Int("f", INT64_MIN, INT64_MAX); EXPECT_EQ(f.ok(), v.is_number_integer()) << v; }
    { core::Fields f(j); f.Bool("f"); EXPECT_EQ(f.ok(), v.is_boolean()) << v; }
    { core::Fields f(j); f.Object("f"); EXPECT_EQ(f.ok(), v.is_object()) << v; }
  }
}

TEST(Fields, integers_are_range_checked_including_huge_unsigned_values) {
  json j = json::parse(R"({"big": 18446744073709551615, "neg": -5, "ok": 5})");
  core::Fields f(j);
  EXPECT_EQ(f.Int("big", INT64_MIN, INT64_MAX), std::nullopt) << "does not wrap to -1";
  EXPECT_FALSE(f.ok());
  core::Fields g(j);
  EXPECT_EQ(g.Int("neg", 0, 10), std::nullopt);
  EXPECT_EQ(g.error(), "neg must be an integer from 0 to 10");
  core::Fields h(j);
  EXPECT_EQ(h.Int("ok", 0, 10), 5);
}

TEST(Fields, required_strings_must_be_present_non_empty_and_free_of_nul) {
  json j = {{"empty", ""}, {"nul", std::string("a\0b", 3)}};
  core::Fields a(j);
  a.String("absent", core::Need::Required);
  EXPECT_EQ(a.error(), "absent is required");
  core::Fields b(j);
  b.String("empty", core::Need::Required);
  EXPECT_EQ(b.error(), "empty must not be empty");
  core::Fields c(j);
  c.String("nul");
  EXPECT_EQ(c.error(), "nul must not contain NUL characters");
}

TEST(Fields, a_non_object_reads_as_all_fields_absent) {
  json arr = json::array({1, 2});
  core::Fields f(arr);
  EXPECT_EQ(f.String("x"), std::nullopt);
  EXPECT_TRUE(f.ok());
}

TEST(JsonBody, malformed_json_says_so_and_where) {
  auto b = core::ParseJsonObject(R"({"channel": "a",})");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.offset, 16);
  EXPECT_NE(b.error.find("not valid JSON"), std::string::npos) << b.error;
  EXPECT_NE(b.error.find("byte offset 16"), std::string::npos) << b.error;
}

TEST(JsonBody, empty_and_truncated_bodies_and_invalid_utf8) {
  auto e = core::ParseJsonObject("");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.offset, 0);
  auto t = core::ParseJsonObject(R"({"a": [1, 2)");
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.offset, 11);
  auto u = core::ParseJsonObject("{\"a\": \"\xff\"}");
  EXPECT_FALSE(u.ok());
  EXPECT_EQ(u.offset, 7);
  EXPECT_NO_THROW(core::DumpJson(json{{"message", u.error}})) << "the message may quote the bad byte";
}

TEST(JsonBody, valid_json_that_is_not_an_object_is_refused_without_offset) {
  auto b = core::ParseJsonObject("[1]");
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.offset, -1);
  EXPECT_EQ(b.error, "the body must be a JSON object, not an array");
  EXPECT_TRUE(b.value.is_object());
}

TEST(JsonBody, nesting_is_bounded_before_parsing) {
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto b = core::ParseJsonObject(deep);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.offset, 5 + core::kMaxJsonDepth - 1);
  std::string fine = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_TRUE(core::ParseJsonObject(fine).ok());
  std::string quoted = "{\"a\":\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(core::ParseJsonObject(quoted).ok()) << "brackets inside strings do not count";
}

TEST(ParseNumbers, strict_text_to_numbers) {
  int64_t i;
  uint64_t u;
  double d;
  EXPECT_TRUE(core::ParseInt64("-42", &i));
  EXPECT_EQ(i, -42);
  for (const char* bad : {"", "-", "4x", " 4", "+4", "99999999999999999999", "1e3"})
    EXPECT_FALSE(core::ParseInt64(bad, &i)) << bad;
  EXPECT_TRUE(core::ParseUint64("18446744073709551615", &u));
  EXPECT_FALSE(core::ParseUint64("18446744073709551616", &u));
  EXPECT_FALSE(core::ParseUint64("-1", &u));
  EXPECT_TRUE(core::ParseDouble("1764273456.123", &d));
  EXPECT_FALSE(core::ParseDouble("nan", &d));
  EXPECT_FALSE(core::ParseDouble("1e999", &d));
  EXPECT_FALSE(core::ParseDouble("1.5x", &d));
}

TEST(JsonOut, invalid_utf8_is_replaced_not_thrown) {
  json j = {{"lastEventId", "\xff"}, {"channels", {"channel:team-\xc3"}}};
  EXPECT_THROW(j.dump(), json::type_error) << "what nlohmann does by default";
  std::string out;
  ASSERT_NO_THROW(out = core::DumpJson(j));
  EXPECT_EQ(out, "{\"channels\":[\"channel:team-\xef\xbf\xbd\"],\"lastEventId\":\"\xef\xbf\xbd\"}");
  EXPECT_TRUE(core::IsValidUtf8(out));
  nlohmann::ordered_json o = {{"x", "\xfe"}};
  EXPECT_EQ(core::DumpJson(o), "{\"x\":\"\xef\xbf\xbd\"}");
  EXPECT_EQ(core::JsonString("a\"\x80"), "\"a\\\"\xef\xbf\xbd\"");
}

TEST(JsonOut, strict_utf8_validation) {
  EXPECT_TRUE(core::IsValidUtf8("plain ascii"));
  EXPECT_TRUE(core::IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  for (const char* bad : {"\xff", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80",
                          "\xf5\x80\x80\x80", "a\xe2\x82"})
    EXPECT_FALSE(core::IsValidUtf8(bad)) << testing::PrintToString(std::string(bad));
}

TEST(Guard, catches_an_exception_from_the_callback_body_and_runs_the_recovery) {
  bool recovered = false;
  bool after = false;
  core::Guard("test", [] { throw std::runtime_error("boom"); }, [&] { recovered = true; });
  after = true;
  EXPECT_TRUE(recovered);
  EXPECT_TRUE(after);
}

TEST(Guard, catches_non_std_exceptions_and_a_throwing_recovery) {
  int recovered = 0;
  EXPECT_NO_THROW(core::Guard("test", [] { throw 42; }, [&] {
    recovered++;
    throw std::logic_error("recovery failed too");
  }));
  EXPECT_EQ(recovered, 1);
  EXPECT_NO_THROW(core::Guard("test", [] { json("\xff").dump(); }));
}

TEST(Guard, runs_no_recovery_when_the_body_succeeds) {
  bool ran = false, recovered = false;
  core::Guard("test", [&] { ran = true; }, [&] { recovered = true; });
  EXPECT_TRUE(ran);
  EXPECT_FALSE(recovered);
}

TEST(RequestText, non_utf8_request_fields_are_named) {
  http::Request r;
  r.path = "/api/events/stream";
  r.query = "channel=channel%3Ateam-%FF";
  EXPECT_EQ(http::FirstInvalidText(r), "query parameter channel");
  r.query = "channel=channel%3Ateam-%C3%A9";
  EXPECT_EQ(http::FirstInvalidText(r), std::nullopt);
  r.headers = {{"last-event-id", "\xff"}};
  EXPECT_EQ(http::FirstInvalidText(r), "header Last-Event-ID");
  r.headers = {{"x-project-id", "p\xc3"}};
  EXPECT_EQ(http::FirstInvalidText(r), "header X-Project-Id");
  r.headers = {{"authorization", "Bearer \xff"}};
  EXPECT_EQ(http::FirstInvalidText(r), std::nullopt) << "tokens are left to the token checks";
  r.path = "/a\xff";
  EXPECT_EQ(http::FirstInvalidText(r), "the path");
}

TEST(JsonBody, numbers_out_of_range_are_refused_not_thrown) {
  core::JsonBody b;
  ASSERT_NO_THROW(b = core::ParseJsonObject(R"({"n": 1e400})"));
  EXPECT_FALSE(b.ok());
  EXPECT_NE(b.error.find("not acceptable JSON"), std::string::npos) << b.error;
}
