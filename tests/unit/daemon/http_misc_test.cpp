// Static file resolution, CORS and error mapping: the pure helpers behind the HTTP API.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "api/common.hpp"
#include "http/cors.hpp"
#include "http/response.hpp"
#include "http/static_files.hpp"

using namespace evstream;

namespace {
class WebRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/evd-unit-web-XXXXXX";
    root_ = mkdtemp(tmpl);
    mkdir((root_ + "/sub").c_str(), 0755);
    std::ofstream(root_ + "/index.html") << "<p>hi</p>";
    std::ofstream(root_ + "/sub/app.mjs") << "export {}";
    std::ofstream(root_ + "-secret.txt") << "secret";  // a sibling with the root as prefix
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + root_ + "' '" + root_ + "-secret.txt'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string root_;
};
}  // namespace

TEST_F(WebRoot, resolves_files_and_directory_index) {
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/"), root_ + "/index.html");
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/sub/app.mjs"), root_ + "/sub/app.mjs");
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/sub/"), "");  // no index.html there
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/nope"), "");
}

TEST_F(WebRoot, never_escapes_the_root) {
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/../" + root_.substr(root_.rfind('/') + 1) + "-secret.txt"), "");
  EXPECT_EQ(http::ResolveUnderRoot(root_, "/../../etc/passwd"), "");
  EXPECT_EQ(http::ResolveUnderRoot(root_, "relative"), "");
}

TEST_F(WebRoot, serves_with_content_type) {
  http::Request req;
  req.method = "GET";
  req.path = "/sub/app.mjs";
  auto r = http::ServeStatic(root_, req);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "export {}");
  EXPECT_EQ(r.headers[0].second, "text/javascript; charset=utf-8");
  req.path = "/missing";
  EXPECT_EQ(http::ServeStatic(root_, req).status, 404);
}

TEST(Cors, only_configured_origins_with_credentials) {
  http::Request req;
  req.headers = {{"origin", "http://a.example"}};
  auto h = http::CorsHeaders({"http://a.example"}, req);
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"Access-Control-Allow-Origin", "http://a.example"}));
  EXPECT_EQ(h[1].second, "true");
  EXPECT_TRUE(http::CorsHeaders({"http://b.example"}, req).empty());
  EXPECT_TRUE(http::CorsHeaders({}, req).empty());
  http::Request no_origin;
  EXPECT_TRUE(http::CorsHeaders({"*"}, no_origin).empty());
}

TEST(Cors, star_never_echoes_and_never_sends_credentials) {
  http::Request req;
  req.headers = {{"origin", "http://evil.example"}};
  auto h = http::CorsHeaders({"*"}, req);
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"Access-Control-Allow-Origin", "*"}));
  for (const auto& [k, v] : h) {
    EXPECT_NE(k, "Access-Control-Allow-Credentials");
    EXPECT_EQ(v.find("evil"), std::string::npos);
  }
  // A named origin beside "*" keeps its credentials.
  req.headers = {{"origin", "http://a.example"}};
  auto named = http::CorsHeaders({"*", "http://a.example"}, req);
  EXPECT_EQ(named[0].second, "http://a.example");
  EXPECT_EQ(named[1], (std::pair<std::string, std::string>{"Access-Control-Allow-Credentials", "true"}));
  auto pre = http::CorsPreflight({"*"}, req);
  bool csrf_allowed = false;
  for (const auto& [k, v] : pre.headers)
    if (k == "Access-Control-Allow-Headers") csrf_allowed = v.find("X-Evstream-CSRF") != std::string::npos;
  EXPECT_TRUE(csrf_allowed);
}

TEST(ErrorMapping, sqlstates_to_http_statuses) {
  EXPECT_EQ(api::StatusForSqlState("EV001"), 409);
  EXPECT_EQ(api::StatusForSqlState("EV002"), 409);
  EXPECT_EQ(api::StatusForSqlState("EV003"), 422);
  EXPECT_EQ(api::StatusForSqlState("EV004"), 422);
  EXPECT_EQ(api::StatusForSqlState("EV005"), 403);
  EXPECT_EQ(api::StatusForSqlState("22023"), 400);
  EXPECT_EQ(api::StatusForSqlState("22P02"), 400);
  EXPECT_EQ(api::StatusForSqlState("22004"), 400);
  EXPECT_EQ(api::StatusForSqlState(""), 503);
  EXPECT_EQ(api::StatusForSqlState("XX000"), 500);
}

TEST(Response, serialises_status_headers_and_length) {
  auto r = http::JsonError(401, "unauthorized", "no");
  std::string wire = http::Serialize(r, false);
  EXPECT_EQ(wire.rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u);
  EXPECT_NE(wire.find("WWW-Authenticate: Bearer\r\n"), std::string::npos);
  EXPECT_NE(wire.find("Connection: close\r\n"), std::string::npos);
  std::string body = "{\"error\":\"unauthorized\",\"message\":\"no\"}\n";
  EXPECT_NE(wire.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(wire.substr(wire.size() - body.size()), body);
}
