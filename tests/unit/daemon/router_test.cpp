// The route table (exact beats prefix, longest prefix wins, 404 vs 405 with Allow, GET answers
// HEAD) and the request-auth rules (token sources per route, the cookie's CSRF rule).
#include <gtest/gtest.h>

#include "auth/request_auth.hpp"
#include "http/router.hpp"

using namespace evstream;

namespace {
http::RouteTable<std::string> Table() {
  http::RouteTable<std::string> t;
  t.Add("/api/events", false, {"POST"}, "post");
  t.Add("/api/events", false, {"GET"}, "history");
  t.Add("/api/events/stream", false, {"GET"}, "stream");
  t.Add("/api/events/", true, {"GET"}, "event");
  t.Add("/api/consumers/", true, {"POST"}, "consumers");
  t.Add("/api/streams/", true, {"GET"}, "streams");
  t.Add("/api/streams/special/", true, {"GET"}, "special");
  return t;
}
}  // namespace

TEST(RouteTable, exact_path_beats_prefix_and_methods_pick_the_route) {
  auto t = Table();
  EXPECT_EQ(*t.Find("POST", "/api/events").value, "post");
  EXPECT_EQ(*t.Find("GET", "/api/events").value, "history");
  EXPECT_EQ(*t.Find("HEAD", "/api/events").value, "history");
  EXPECT_EQ(*t.Find("GET", "/api/events/stream").value, "stream");
  EXPECT_EQ(*t.Find("GET", "/api/events/0b7c5a4e-0000-0000-0000-000000000000").value, "event");
}

TEST(RouteTable, longest_prefix_wins) {
  auto t = Table();
  EXPECT_EQ(*t.Find("GET", "/api/streams/doc/1").value, "streams");
  EXPECT_EQ(*t.Find("GET", "/api/streams/special/1").value, "special");
}

TEST(RouteTable, wrong_method_is_405_with_allow_unknown_path_is_404) {
  auto t = Table();
  auto f = t.Find("DELETE", "/api/events");
  EXPECT_EQ(f.status, 405);
  EXPECT_EQ(f.value, nullptr);
  EXPECT_EQ(f.allow, "POST, GET, HEAD");
  EXPECT_EQ(t.Find("POST", "/api/events/stream").status, 405);
  EXPECT_EQ(t.Find("POST", "/api/events/stream").allow, "GET, HEAD");
  EXPECT_EQ(t.Find("GET", "/api/consumers/x/claim").status, 405);
  EXPECT_EQ(t.Find("GET", "/api/nothing").status, 404);
  EXPECT_EQ(t.Find("GET", "/api/consumers/").status, 404);  // a prefix needs something below it
  EXPECT_EQ(t.Find("GET", "/api/eventsX").status, 404);
}

namespace {
http::Request Req(std::string method, std::vector<std::pair<std::string, std::string>> headers,
                  std::string query = "") {
  http::Request r;
  r.method = std::move(method);
  r.headers = std::move(headers);
  r.query = std::move(query);
  return r;
}
}  // namespace

TEST(RequestAuth, token_sources_follow_the_route_policy) {
  auth::TokenSource src;
  std::string why;
  auth::TokenPolicy stream{true, true}, api{true, false};
  auto h = Req("GET", {{"authorization", "Bearer abc"}, {"cookie", "evstream_token=ck"}}, "access_token=q");
  EXPECT_EQ(auth::ExtractToken(h, api, &src, &why), "abc");
  EXPECT_EQ(src, auth::TokenSource::Header);
  auto ck = Req("GET", {{"cookie", "a=1; evstream_token=ck"}});
  EXPECT_EQ(auth::ExtractToken(ck, api, &src, &why), "ck");
  EXPECT_EQ(src, auth::TokenSource::Cookie);
  auto q = Req("POST", {}, "access_token=q");
  EXPECT_EQ(auth::ExtractToken(q, stream, &src, &why), "q");
  EXPECT_EQ(src, auth::TokenSource::Query);
  why.clear();
  EXPECT_EQ(auth::ExtractToken(q, api, &src, &why), "");
  EXPECT_EQ(src, auth::TokenSource::None);
  EXPECT_NE(why.find("access_token"), std::string::npos);
}

TEST(RequestAuth, cookie_writes_need_the_csrf_header_and_an_allowed_origin) {
  std::string why;
  std::vector<std::string> origins = {"https://app.example", "*"};
  EXPECT_TRUE(auth::CookieMayWrite(Req("GET", {}), origins, &why));
  // A form: no CSRF header.
  EXPECT_FALSE(auth::CookieMayWrite(Req("POST", {{"origin", "https://app.example"}}), origins, &why));
  EXPECT_NE(why.find("X-Evstream-CSRF"), std::string::npos);
  // The header but a foreign, missing or "null" origin; "*" never counts.
  EXPECT_FALSE(auth::CookieMayWrite(Req("POST", {{"x-evstream-csrf", "1"}, {"origin", "https://evil.example"}}),
                                    origins, &why));
  EXPECT_FALSE(auth::CookieMayWrite(Req("POST", {{"x-evstream-csrf", "1"}}), origins, &why));
  EXPECT_FALSE(auth::CookieMayWrite(Req("POST", {{"x-evstream-csrf", "1"}, {"origin", "null"}}), origins, &why));
  EXPECT_FALSE(auth::CookieMayWrite(Req("POST", {{"x-evstream-csrf", "0"}, {"origin", "https://app.example"}}),
                                    origins, &why));
  // Allowed: a named origin, or the server's own (Host).
  EXPECT_TRUE(auth::CookieMayWrite(Req("POST", {{"x-evstream-csrf", "1"}, {"origin", "https://app.example"}}),
                                   origins, &why));
  EXPECT_TRUE(auth::CookieMayWrite(
      Req("POST", {{"x-evstream-csrf", "1"}, {"origin", "http://127.0.0.1:8080"}, {"host", "127.0.0.1:8080"}}), {},
      &why));
}
