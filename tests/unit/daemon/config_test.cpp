#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>

#include "core/config.hpp"

using namespace evstream::core;

namespace {
std::map<std::string, std::string> g_env;
const char* FakeEnv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}
ParseOutcome Parse(std::vector<const char*> args, Config* c, std::string* err) {
  args.insert(args.begin(), "evstreamd");
  return ParseConfig(static_cast<int>(args.size()), args.data(), c, err, FakeEnv);
}
}  // namespace

TEST(Config, defaults) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.heartbeat_seconds, 15);
}

TEST(Config, flags_in_both_forms) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({"--listen", "0.0.0.0:9000", "--heartbeat=3", "--jwt-secret", "s", "--cors-origin",
                   "http://a", "--cors-origin=http://b,http://c"},
                  &c, &err),
            ParseOutcome::Run)
      << err;
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9000);
  EXPECT_EQ(c.heartbeat_seconds, 3);
  EXPECT_EQ(c.jwt_secret, "s");
  EXPECT_EQ(c.cors_origins, (std::vector<std::string>{"http://a", "http://b", "http://c"}));
}

TEST(Config, environment_applies_and_flags_win) {
  g_env = {{"EVSTREAM_LISTEN", "127.0.0.1:7000"}, {"EVSTREAM_HEARTBEAT", "9"},
           {"EVSTREAM_JWT_AUDIENCE", "aud"}, {"EVSTREAM_CORS_ORIGIN", "http://env"}};
  Config c;
  std::string err;
  ASSERT_EQ(Parse({"--heartbeat", "4", "--cors-origin", "http://flag"}, &c, &err), ParseOutcome::Run);
  EXPECT_EQ(c.listen_port, 7000);
  EXPECT_EQ(c.heartbeat_seconds, 4);
  EXPECT_EQ(c.jwt_audience, "aud");
  EXPECT_EQ(c.cors_origins, (std::vector<std::string>{"http://flag"}));
  g_env.clear();
}

TEST(Config, errors_name_the_problem) {
  g_env.clear();
  Config c;
  std::string err;
  EXPECT_EQ(Parse({"--nope"}, &c, &err), ParseOutcome::Error);
  EXPECT_NE(err.find("--nope"), std::string::npos);
  EXPECT_EQ(Parse({"--heartbeat", "0"}, &c, &err), ParseOutcome::Error);
  EXPECT_EQ(Parse({"--heartbeat", "x"}, &c, &err), ParseOutcome::Error);
  EXPECT_EQ(Parse({"--listen", "nocolon"}, &c, &err), ParseOutcome::Error);
  EXPECT_EQ(Parse({"--listen"}, &c, &err), ParseOutcome::Error);
  g_env = {{"EVSTREAM_MAX_QUEUE_BYTES", "-5"}};
  EXPECT_EQ(Parse({}, &c, &err), ParseOutcome::Error);
  EXPECT_NE(err.find("EVSTREAM_MAX_QUEUE_BYTES"), std::string::npos);
  g_env.clear();
}

TEST(Config, help_and_version) {
  g_env.clear();
  Config c;
  std::string err;
  EXPECT_EQ(Parse({"--help"}, &c, &err), ParseOutcome::Help);
  EXPECT_EQ(Parse({"--version"}, &c, &err), ParseOutcome::Version);
  std::string help = HelpText();
  for (const char* flag : {"--listen", "--database-url", "--jwt-secret", "--jwt-public-key", "--jwt-audience",
                           "--jwt-issuer", "--heartbeat", "--max-queue-bytes", "--web-root", "--cors-origin"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

TEST(Config, listen_forms) {
  std::string host;
  int port;
  ASSERT_TRUE(ParseListen("[::1]:80", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 80);
  ASSERT_TRUE(ParseListen(":0", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_FALSE(ParseListen("h:70000", &host, &port));
}

// The README's flag table states the heartbeat period the daemon really uses by default.
TEST(Config, readme_heartbeat_default_matches_the_daemon) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  std::ifstream in(std::string(EVSTREAM_TEST_DATA) + "/../../../../README.md");
  ASSERT_TRUE(in.good());
  std::string line, row;
  while (std::getline(in, line))
    if (line.rfind("| `--heartbeat SECONDS` |", 0) == 0) row = line;
  ASSERT_FALSE(row.empty()) << "README documents --heartbeat";
  std::smatch m;
  ASSERT_TRUE(std::regex_search(row, m, std::regex("^\\| `--heartbeat SECONDS` \\| (\\d+) \\|")));
  EXPECT_EQ(std::stoi(m[1]), c.heartbeat_seconds);
  EXPECT_NE(HelpText().find("(default " + std::to_string(c.heartbeat_seconds) + ")"), std::string::npos);
}

TEST(Config, jwt_lifecycle_flags) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  EXPECT_FALSE(c.jwt_allow_no_exp);
  EXPECT_EQ(c.jwt_max_age_seconds, 0);
  // A switch takes no value (the next argument stays a flag), or an explicit =true/=false.
  ASSERT_EQ(Parse({"--jwt-allow-no-exp", "--jwt-max-age", "300", "--jwt-jwks", "/k.json"}, &c, &err), ParseOutcome::Run)
      << err;
  EXPECT_TRUE(c.jwt_allow_no_exp);
  EXPECT_EQ(c.jwt_max_age_seconds, 300);
  EXPECT_EQ(c.jwt_jwks_file, "/k.json");
  ASSERT_EQ(Parse({"--jwt-allow-no-exp=false"}, &c, &err), ParseOutcome::Run);
  EXPECT_FALSE(c.jwt_allow_no_exp);
  EXPECT_EQ(Parse({"--jwt-allow-no-exp=maybe"}, &c, &err), ParseOutcome::Error);
  EXPECT_EQ(Parse({"--jwt-max-age", "-1"}, &c, &err), ParseOutcome::Error);
  g_env["EVSTREAM_JWT_ALLOW_NO_EXP"] = "1";
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  EXPECT_TRUE(c.jwt_allow_no_exp);
  g_env.clear();
  Config both;
  ASSERT_EQ(Parse({"--jwt-secret", "x", "--jwt-secret-file", "/nonexistent"}, &both, &err), ParseOutcome::Run);
  EXPECT_FALSE(LoadFiles(&both, &err));
  EXPECT_NE(err.find("give one of them"), std::string::npos) << err;
}

// --stats-fold-ms: the daemon folds the stats summary every second unless told otherwise; 0 turns
// the periodic fold off; negative values are refused.
TEST(Config, stats_fold_ms) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  EXPECT_EQ(c.stats_fold_ms, 1000);
  ASSERT_EQ(Parse({"--stats-fold-ms", "0"}, &c, &err), ParseOutcome::Run) << err;
  EXPECT_EQ(c.stats_fold_ms, 0);
  EXPECT_EQ(Parse({"--stats-fold-ms", "-1"}, &c, &err), ParseOutcome::Error);
  g_env = {{"EVSTREAM_STATS_FOLD_MS", "250"}};
  Config e;
  ASSERT_EQ(Parse({}, &e, &err), ParseOutcome::Run) << err;
  EXPECT_EQ(e.stats_fold_ms, 250);
  g_env.clear();
  EXPECT_NE(HelpText().find("--stats-fold-ms"), std::string::npos);
}

// --threads: 0 (one loop per core) to 256; anything else, from a flag or EVSTREAM_THREADS, is refused.
TEST(Config, threads) {
  g_env.clear();
  Config c;
  std::string err;
  ASSERT_EQ(Parse({}, &c, &err), ParseOutcome::Run);
  EXPECT_EQ(c.threads, 0);
  ASSERT_EQ(Parse({"--threads", "2"}, &c, &err), ParseOutcome::Run) << err;
  EXPECT_EQ(c.threads, 2);
  for (const char* bad : {"-1", "257", "99999999999999999999", "2x", "", " 2", "+2", "0x10", "-"}) {
    Config b;
    EXPECT_EQ(Parse({"--threads", bad}, &b, &err), ParseOutcome::Error) << bad;
    EXPECT_NE(err.find("--threads"), std::string::npos) << err;
  }
  g_env = {{"EVSTREAM_THREADS", "3"}};
  Config e;
  ASSERT_EQ(Parse({}, &e, &err), ParseOutcome::Run) << err;
  EXPECT_EQ(e.threads, 3);
  g_env = {{"EVSTREAM_THREADS", "lots"}};
  Config f;
  EXPECT_EQ(Parse({}, &f, &err), ParseOutcome::Error);
  g_env.clear();
}
