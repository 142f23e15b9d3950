// HTTP responses: status line + headers + body, and JSON error bodies.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace evstream::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  bool head_only = false;  // HEAD: headers (with the real Content-Length) but no body
};

const char* StatusText(int status);
// Serialises a response; adds Content-Length, Connection and Date-free defaults.
std::string Serialize(const Response& r, bool keep_alive);
// {"error": code, "message": message} with the given status.
Response JsonError(int status, const std::string& code, const std::string& message,
                   const nlohmann::json& extra = nlohmann::json::object());
Response Json(int status, const nlohmann::json& body);
Response JsonRaw(int status, std::string body);

}  // namespace evstream::http
