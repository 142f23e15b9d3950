#include "core/guard.hpp"

#include <cstdio>
#include <string>

#include "core/log.hpp"

namespace evstream::core {

void LogCallbackFailure(std::string_view where, const char* what, bool recovering) noexcept {
  try {
    LogError(recovering ? "callback recovery failed" : "callback failed",
             {{"where", std::string(where)}, {"error", std::string(what ? what : "")}});
  } catch (...) {
    // Out of memory while logging: one fixed line, no allocation.
    std::fputs("{\"level\":\"error\",\"msg\":\"callback failed\"}\n", stderr);
  }
}

}  // namespace evstream::core
