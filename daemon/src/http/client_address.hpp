// The client's address behind a reverse proxy (nginx, see docs/nginx.conf). X-Forwarded-For and
// X-Real-IP are believed only when the TCP peer is a configured trusted proxy
// (--trusted-proxy); from anyone else they are ignored, so a client cannot pose as another
// address to the per-address limits or in the logs. Pure: unit-tested.
#pragma once
#include <string>
#include <vector>

#include "http/request.hpp"

namespace evstream::http {

// Addresses and CIDR blocks (IPv4 and IPv6): "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8".
class ProxyList {
 public:
  // Adds one entry; false (with the reason) when it is not an address or a block.
  bool Add(const std::string& text, std::string* error);
  bool Contains(const std::string& ip) const;
  bool empty() const { return nets_.empty(); }

 private:
  struct Net {
    int family;
    unsigned char bytes[16];
    int prefix;
  };
  std::vector<Net> nets_;
};

// The address a request comes from. `peer_ip` (the socket's) unless the peer is in `trusted`;
// then the right-most X-Forwarded-For entry that is not itself a trusted proxy (every
// X-Forwarded-For header, in order), else X-Real-IP, else the peer. Entries that are not plain
// IP addresses end the walk (the peer's address is used), so garbage never becomes an address.
std::string ClientAddress(const std::string& peer_ip, const ProxyList& trusted, const Request& req);

}  // namespace evstream::http
