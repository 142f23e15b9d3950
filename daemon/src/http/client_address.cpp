#include "http/client_address.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace evstream::http {
namespace {

// Parses a plain IPv4 or IPv6 address; false for anything else (ports, brackets, names).
bool ParseIp(const std::string& text, int* family, unsigned char* bytes) {
  if (text.empty() || text.size() > 45) return false;
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

bool ProxyList::Add(const std::string& text, std::string* error) {
  Net n{};
  std::string addr = text;
  int max_prefix;
  auto slash = text.find('/');
  if (slash != std::string::npos) addr = text.substr(0, slash);
  if (!ParseIp(addr, &n.family, n.bytes)) {
    *error = "\"" + text + "\" is not an IP address or CIDR block (e.g. 127.0.0.1, 10.0.0.0/8, ::1)";
    return false;
  }
  max_prefix = n.family == AF_INET ? 32 : 128;
  n.prefix = max_prefix;
  if (slash != std::string::npos) {
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(p) > max_prefix) {
      *error = "\"" + text + "\" has a bad prefix length (0-" + std::to_string(max_prefix) + ")";
      return false;
    }
    n.prefix = std::stoi(p);
  }
  nets_.push_back(n);
  return true;
}

bool ProxyList::Contains(const std::string& ip) const {
  int family;
  unsigned char bytes[16] = {0};
  if (!ParseIp(ip, &family, bytes)) return false;
  for (const auto& n : nets_) {
    if (n.family != family) continue;
    int full = n.prefix / 8, rest = n.prefix % 8;
    if (std::memcmp(n.bytes, bytes, full) != 0) continue;
    if (rest) {
      unsigned char mask = static_cast<unsigned char>(0xFF << (8 - rest));
      if ((n.bytes[full] & mask) != (bytes[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

std::string ClientAddress(const std::string& peer_ip, const ProxyList& trusted, const Request& req) {
  if (trusted.empty() || !trusted.Contains(peer_ip)) return peer_ip;
  // Every X-Forwarded-For header, in order, as one list; walk it from the right (the entry the
  // nearest proxy added) past the trusted proxies.
  std::vector<std::string> hops;
  for (const auto& [name, value] : req.headers) {
    if (name != "x-forwarded-for") continue;
    size_t start = 0;
    for (;;) {
      size_t comma = value.find(',', start);
      hops.push_back(Trim(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  int family;
  unsigned char bytes[16];
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!ParseIp(*it, &family, bytes)) return peer_ip;
    if (!trusted.Contains(*it)) return *it;
  }
  if (!hops.empty()) return hops.front();  // every hop is a trusted proxy: the first is the origin
  if (const std::string* real = req.Header("x-real-ip")) {
    std::string r = Trim(*real);
    if (ParseIp(r, &family, bytes)) return r;
  }
  return peer_ip;
}

}  // namespace evstream::http
