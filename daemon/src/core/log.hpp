// One JSON object per line on stderr: {"ts":"…","level":"info","msg":"…",…fields}.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::core {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void SetLogLevel(LogLevel level);
bool ParseLogLevel(std::string_view text, LogLevel* out);
void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void LogInfo(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::Info, msg, f);
}
inline void LogWarn(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::Warn, msg, f);
}
inline void LogError(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::Error, msg, f);
}
inline void LogDebug(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::Debug, msg, f);
}

// ISO 8601 UTC with milliseconds ("2026-01-02T03:04:05.678Z") for a Unix time in seconds.
std::string IsoTime(double unix_seconds);
double NowSeconds();

}  // namespace evstream::core
