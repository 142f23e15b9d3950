#include "http/static_files.hpp"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace evstream::http {
namespace {
constexpr off_t kMaxStaticBytes = 16 << 20;

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) return "";
  return buf;
}
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::string ContentTypeFor(const std::string& path) {
  static const std::pair<const char*, const char*> types[] = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
      {".map", "application/json"}, {".ts", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".ico", "image/x-icon"},
      {".webp", "image/webp"}, {".txt", "text/plain; charset=utf-8"}, {".wasm", "application/wasm"},
      {".woff2", "font/woff2"}};
  for (const auto& [ext, type] : types)
    if (EndsWith(path, ext)) return type;
  return "application/octet-stream";
}

std::string ResolveUnderRoot(const std::string& root, const std::string& url_path) {
  if (url_path.empty() || url_path[0] != '/' || url_path.find('\0') != std::string::npos) return "";
  std::string real_root = RealPath(root);
  if (real_root.empty()) return "";
  std::string candidate = RealPath(root + url_path);
  if (candidate.empty()) return "";
  if (candidate != real_root && candidate.compare(0, real_root.size() + 1, real_root + "/") != 0) return "";
  struct stat st;
  if (stat(candidate.c_str(), &st) != 0) return "";
  if (S_ISDIR(st.st_mode)) {
    candidate += "/index.html";
    if (stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  }
  if (!S_ISREG(st.st_mode)) return "";
  return candidate;
}

Response ServeStatic(const std::string& root, const Request& req) {
  std::string file = ResolveUnderRoot(root, req.path);
  if (file.empty()) return JsonError(404, "not_found", "no such file");
  struct stat st;
  if (stat(file.c_str(), &st) != 0 || st.st_size > kMaxStaticBytes)
    return JsonError(404, "not_found", "no such file");
  std::ifstream in(file, std::ios::binary);
  if (!in) return JsonError(404, "not_found", "no such file");
  std::ostringstream ss;
  ss << in.rdbuf();
  Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", ContentTypeFor(file));
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.body = ss.str();
  r.head_only = req.method == "HEAD";
  return r;
}

}  // namespace evstream::http
