// Static files under --web-root: GET/HEAD only, no path escapes the root (realpath check),
// directories serve index.html, small files only. The daemon serves them from StaticFiles,
// read into memory once at startup with a total size bound, so the event loop never touches
// the disk; ServeStatic (reads the file) is kept for tools and tests.
#pragma once
#include <cstddef>
#include <string>
#include <unordered_map>

#include "http/request.hpp"
#include "http/response.hpp"

namespace evstream::http {

std::string ContentTypeFor(const std::string& path);
// Resolves the request path under root; empty if it escapes or does not exist.
std::string ResolveUnderRoot(const std::string& root, const std::string& url_path);
Response ServeStatic(const std::string& root, const Request& req);

class StaticFiles {
 public:
  // Reads every regular file under root (symlinks only when they stay inside it). False with
  // *error when the files together exceed max_total_bytes or root cannot be read.
  bool Load(const std::string& root, size_t max_total_bytes, std::string* error);
  // 200 with the file (HEAD: headers only), or 404.
  Response Serve(const Request& req) const;
  size_t Files() const { return files_.size(); }
  size_t Bytes() const { return bytes_; }

 private:
  struct File {
    std::string content_type;
    std::string body;
  };
  bool Walk(const std::string& real_root, const std::string& dir, const std::string& url, size_t max_total,
            int depth, std::string* error);
  std::unordered_map<std::string, File> files_;  // by URL path ("/", "/js/app.js")
  size_t bytes_ = 0;
};

}  // namespace evstream::http
