// evstreamd's configuration (daemon/src/core/config.cpp): flags and environment variables are
// outside input too (deployment files, container environments). Input: NUL-separated argv
// entries, then after a 0x01 byte, NUL-separated NAME=VALUE environment entries.
// Properties: ParseConfig and ParseListen return; a config accepted to Run has sane numbers.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "fuzz_util.hpp"

namespace core = evstream::core;

namespace {
std::map<std::string, std::string> g_env;
const char* GetEnv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto halves = fuzz::Split(fuzz::View(data, size), '\x01', 2);
  std::vector<std::string> args = fuzz::Split(halves[0], '\0', 64);
  args.insert(args.begin(), "evstreamd");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  g_env.clear();
  if (halves.size() > 1)
    for (const std::string& kv : fuzz::Split(halves[1], '\0', 64)) {
      size_t eq = kv.find('=');
      if (eq != std::string::npos) g_env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  core::Config cfg;
  std::string error;
  core::ParseOutcome o = core::ParseConfig(static_cast<int>(args.size()), argv.data(), &cfg, &error, GetEnv);
  if (o == core::ParseOutcome::Run) {
    FUZZ_CHECK(cfg.listen_port >= 0 && cfg.listen_port <= 65535, "listen port out of range");
    FUZZ_CHECK(cfg.heartbeat_seconds >= 0 && cfg.db_pool_size >= 0 && cfg.batch_size >= 0,
               "a negative setting was accepted");
  }
  if (o == core::ParseOutcome::Error) FUZZ_CHECK(!error.empty(), "an error without a message");
  std::string host;
  int port = 0;
  if (core::ParseListen(std::string(halves[0]), &host, &port))
    FUZZ_CHECK(port >= 0 && port <= 65535, "ParseListen accepted a port out of range");
  return 0;
}
