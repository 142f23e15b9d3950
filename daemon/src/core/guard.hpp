// The exception boundary of the daemon: every libuv and libpq callback body runs inside Guard.
// One exception anywhere must never reach libuv or libpq (C code: std::terminate, and with it
// every stream of every user). Guard catches everything, logs one JSON line
// ({"level":"error","msg":"callback failed","where":…,"error":…}) and then runs `on_error`,
// which closes only what the callback concerns: the one connection, the feed (it reconnects and
// catches up from its cursor), or the one pool request. on_error is guarded too.
#pragma once
#include <exception>
#include <string_view>
#include <utility>

namespace evstream::core {

// One JSON log line for a caught exception; never throws.
void LogCallbackFailure(std::string_view where, const char* what, bool recovering = false) noexcept;

template <typename Body, typename OnError>
void Guard(std::string_view where, Body&& body, OnError&& on_error) noexcept {
  try {
    std::forward<Body>(body)();
    return;
  } catch (const std::exception& e) {
    LogCallbackFailure(where, e.what());
  } catch (...) {
    LogCallbackFailure(where, "unknown exception");
  }
  try {
    std::forward<OnError>(on_error)();
  } catch (const std::exception& e) {
    LogCallbackFailure(where, e.what(), true);
  } catch (...) {
    LogCallbackFailure(where, "unknown exception", true);
  }
}

// For callbacks that own nothing to close (the log line is the whole recovery).
template <typename Body>
void Guard(std::string_view where, Body&& body) noexcept {
  Guard(where, std::forward<Body>(body), [] {});
}

}  // namespace evstream::core
