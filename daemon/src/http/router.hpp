// The route table: (path, methods) -> a value (the API keeps its handler and options there).
// Pure: no I/O, unit-tested. An exact path wins over a prefix; among prefixes the longest wins.
// A path that matches with another method is a 405 (with the Allow list), else a 404. GET
// routes answer HEAD too.
#pragma once
#include <string>
#include <vector>

namespace evstream::http {

template <typename T>
class RouteTable {
 public:
  struct Found {
    const T* value = nullptr;  // set when status == 200
    int status = 404;          // 200, 404 or 405
    std::string allow;         // for 405: "GET, HEAD, POST"
  };

  // path: an exact path ("/api/events"), or with prefix = true a folder ending in '/'
  // ("/api/streams/") that matches every longer path below it.
  void Add(std::string path, bool prefix, std::vector<std::string> methods, T value) {
    routes_.push_back(Route{std::move(path), prefix, std::move(methods), std::move(value)});
  }

  Found Find(const std::string& method, const std::string& path) const {
    Found f;
    // Best matching path first: exact, else the longest prefix; then the method among the
    // routes with that very path.
    const std::string* best = nullptr;
    bool best_exact = false;
    for (const auto& r : routes_) {
      bool exact = !r.prefix && r.path == path;
      bool under = r.prefix && path.size() > r.path.size() && path.compare(0, r.path.size(), r.path) == 0;
      if (!exact && !under) continue;
      if (best_exact && !exact) continue;
      if (!best || (exact && !best_exact) || (!exact && r.path.size() > best->size())) {
        best = &r.path;
        best_exact = exact;
      }
    }
    if (!best) return f;
    std::vector<std::string> allowed;
    for (const auto& r : routes_) {
      if (r.path != *best || r.prefix == best_exact) continue;
      for (const auto& m : r.methods) {
        if (m == method || (m == "GET" && method == "HEAD")) {
          f.value = &r.value;
          f.status = 200;
          return f;
        }
        allowed.push_back(m);
        if (m == "GET") allowed.push_back("HEAD");
      }
    }
    f.status = 405;
    for (const auto& m : allowed) f.allow += (f.allow.empty() ? "" : ", ") + m;
    return f;
  }

 private:
  struct Route {
    std::string path;
    bool prefix;
    std::vector<std::string> methods;
    T value;
  };
  std::vector<Route> routes_;
};

}  // namespace evstream::http
