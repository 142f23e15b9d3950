#include "core/log.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "core/json_out.hpp"

namespace evstream::core {
namespace {
LogLevel g_level = LogLevel::Info;
const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "info";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  for (LogLevel l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    if (text == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

double NowSeconds() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count() / 1e6;
}

std::string IsoTime(double unix_seconds) {
  double whole = std::floor(unix_seconds);
  auto t = static_cast<time_t>(whole);
  int ms = static_cast<int>((unix_seconds - whole) * 1000.0);
  if (ms > 999) ms = 999;
  struct tm tm_utc;
  gmtime_r(&t, &tm_utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
                tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec, ms);
  return buf;
}

void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields) {
  if (level < g_level) return;
  nlohmann::ordered_json line;
  line["ts"] = IsoTime(NowSeconds());
  line["level"] = LevelName(level);
  line["msg"] = std::string(msg);
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  std::string text = DumpJson(line);
  text.push_back('\n');
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace evstream::core
