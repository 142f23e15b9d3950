// Static files under --web-root: GET/HEAD only, no path escapes the root (realpath check),
// directories serve index.html, small files only.
#pragma once
#include <string>

#include "http/request.hpp"
#include "http/response.hpp"

namespace evstream::http {

std::string ContentTypeFor(const std::string& path);
// Resolves the request path under root; empty if it escapes or does not exist.
std::string ResolveUnderRoot(const std::string& root, const std::string& url_path);
Response ServeStatic(const std::string& root, const Request& req);

}  // namespace evstream::http
