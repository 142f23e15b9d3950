#include "http/limits.hpp"

namespace evstream::http {

int SharedLimits::MoveAddress(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!from.empty())
    if (auto it = per_address_.find(from); it != per_address_.end() && --it->second <= 0) per_address_.erase(it);
  return to.empty() ? 0 : ++per_address_[to];
}

int SharedLimits::AddressCount(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_address_.find(address);
  return it == per_address_.end() ? 0 : it->second;
}

bool SharedLimits::ClaimSub(const std::string& from, const std::string& to, int max) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_sub_.find(to);
  if (it != per_sub_.end() && it->second >= max) return false;
  if (it == per_sub_.end() && max <= 0) return false;
  per_sub_[to]++;
  if (!from.empty())
    if (auto f = per_sub_.find(from); f != per_sub_.end() && --f->second <= 0) per_sub_.erase(f);
  return true;
}

void SharedLimits::ReleaseSub(const std::string& sub) {
  if (sub.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = per_sub_.find(sub); it != per_sub_.end() && --it->second <= 0) per_sub_.erase(it);
}

bool SharedLimits::TakePending(size_t n, size_t max) {
  size_t cur = pending_.load(std::memory_order_relaxed);
  do {
    if (cur + n > max) return false;
  } while (!pending_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
  return true;
}

}  // namespace evstream::http
