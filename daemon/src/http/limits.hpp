// The connection limits every loop's Server shares (--threads): connections per client address
// and per token sub, the unread-bytes budget and the open connection count hold for the whole
// daemon, whichever loop a connection landed on. Taken at accept, close, sub claim and as request
// bytes arrive — never per delivered frame.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace evstream::http {

class SharedLimits {
 public:
  // Moves one connection's count from address `from` ("" = none) to `to`; returns the count of
  // `to` afterwards.
  int MoveAddress(const std::string& from, const std::string& to);
  int AddressCount(const std::string& address);
  // Moves one connection from sub `from` ("" = none) to `to` unless `to` already holds `max`.
  bool ClaimSub(const std::string& from, const std::string& to, int max);
  void ReleaseSub(const std::string& sub);
  // Bytes of incomplete requests: false (nothing taken) when n would pass `max`.
  bool TakePending(size_t n, size_t max);
  void ReleasePending(size_t n) { pending_.fetch_sub(n, std::memory_order_relaxed); }
  size_t Pending() const { return pending_.load(std::memory_order_relaxed); }
  // Open TCP connections and HTTP/2 streams, all loops.
  int64_t Open() const { return open_.load(std::memory_order_relaxed); }
  void AddOpen(int64_t d) { open_.fetch_add(d, std::memory_order_relaxed); }
  // One more unless that passes `max` (every loop at once: no overshoot).
  bool TryOpen(int64_t max) {
    int64_t cur = open_.load(std::memory_order_relaxed);
    do {
      if (cur >= max) return false;
    } while (!open_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    return true;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, int> per_address_;  // guarded by mu_
  std::unordered_map<std::string, int> per_sub_;      // guarded by mu_
  std::atomic<size_t> pending_{0};
  std::atomic<int64_t> open_{0};
};

}  // namespace evstream::http
