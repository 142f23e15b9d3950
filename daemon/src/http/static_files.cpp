#include "http/static_files.hpp"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <dirent.h>
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

bool StaticFiles::Load(const std::string& root, size_t max_total_bytes, std::string* error) {
  files_.clear();
  bytes_ = 0;
  std::string real_root = RealPath(root);
  if (real_root.empty()) {
    *error = "cannot resolve --web-root " + root;
    return false;
  }
  return Walk(real_root, real_root, "", max_total_bytes, 0, error);
}

bool StaticFiles::Walk(const std::string& real_root, const std::string& dir, const std::string& url,
                       size_t max_total, int depth, std::string* error) {
  if (depth > 32) return true;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    *error = "cannot read directory " + dir;
    return false;
  }
  bool ok = true;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = RealPath(dir + "/" + name);
    // Inside the root only (a symlink may point elsewhere).
    if (path.empty() || path.compare(0, real_root.size() + 1, real_root + "/") != 0) continue;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    std::string u = url + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      if (!(ok = Walk(real_root, dir + "/" + name, u, max_total, depth + 1, error))) break;
      continue;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > kMaxStaticBytes) continue;
    if (bytes_ + static_cast<size_t>(st.st_size) > max_total) {
      *error = "--web-root holds more than --web-max-bytes (" + std::to_string(max_total) + " bytes)";
      ok = false;
      break;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::ostringstream ss;
    ss << in.rdbuf();
    File f{ContentTypeFor(path), ss.str()};
    bytes_ += f.body.size();
    if (name == "index.html") {
      files_[url + "/"] = f;
      if (!url.empty()) files_[url] = f;
    }
    files_[u] = std::move(f);
  }
  closedir(d);
  return ok;
}

Response StaticFiles::Serve(const Request& req) const {
  auto it = files_.find(req.path);
  if (it == files_.end()) return JsonError(404, "not_found", "no such file");
  Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", it->second.content_type);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.body = it->second.body;
  r.head_only = req.method == "HEAD";
  return r;
}

}  // namespace evstream::http
