// HTTP/1.1 requests through Debian's http_parser (Node's original parser): bytes in, complete
// requests out, with limits on header and body size. Pure: no I/O, unit-tested.
#pragma once
#include <http_parser.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evstream::http {

struct Request {
  std::string method;
  std::string target;  // as sent: path + "?" + query
  std::string path;    // percent-decoded
  std::string query;   // raw
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool keep_alive = false;

  // First header with that (lower-case) name.
  const std::string* Header(std::string_view name) const;
  // Query parameters, percent-decoded ('+' is a space), in order.
  std::vector<std::pair<std::string, std::string>> QueryParams() const;
  std::vector<std::string> QueryAll(std::string_view name) const;
  std::optional<std::string> QueryOne(std::string_view name) const;
  // A cookie value from the Cookie header(s).
  std::optional<std::string> Cookie(std::string_view name) const;
};

std::string PercentDecode(std::string_view s, bool plus_is_space);

// The request's text that is not valid UTF-8 once percent-decoded, named for the client ("the
// path", "query parameter channel", "header Last-Event-ID"), or nothing. Checks the path, every
// query parameter's name and value, and the headers the daemon reads as text (Last-Event-ID,
// X-Project-Id, Idempotency-Key). Tokens are left to the token checks.
std::optional<std::string> FirstInvalidText(const Request& r);

class RequestParser {
 public:
  enum class Status { NeedMore, Complete, Error };

  explicit RequestParser(size_t max_body_bytes);
  // Feeds bytes; on Complete the request is ready and unconsumed bytes are kept for the next
  // request (call Next() to continue with them). On Error, ErrorStatus() is the HTTP status to
  // answer (400, 413, 414, 431). The status of a request does not depend on how its
  // bytes were split.
  Status Feed(const char* data, size_t len);
  // Continues with bytes left over after the previous request (pipelining).
  Status Next();
  Request& request() { return req_; }
  int ErrorStatus() const { return error_status_; }
  bool Upgrade() const { return parser_.upgrade; }
  // The current (incomplete) request's headers are all in: its body is being read.
  bool HeadersDone() const { return headers_done_; }
  // True once per request that sent `Expect: 100-continue` and whose body we will accept.
  bool TakeExpectContinue() { return std::exchange(expect_continue_, false); }
  // Frees the request and any bytes left over (the connection reads no further request).
  void ReleaseRequest();

 private:
  static int OnMessageBegin(http_parser* p);
  static int OnUrl(http_parser* p, const char* at, size_t len);
  static int OnHeaderField(http_parser* p, const char* at, size_t len);
  static int OnHeaderValue(http_parser* p, const char* at, size_t len);
  static int OnHeadersComplete(http_parser* p);
  static int OnBody(http_parser* p, const char* at, size_t len);
  static int OnMessageComplete(http_parser* p);
  Status Run(const char* data, size_t len);

  http_parser parser_;
  http_parser_settings settings_;
  size_t max_body_;
  Request req_;
  bool in_value_ = false;
  bool in_field_ = false;   // a header field has begun (the next value ends it)
  bool dropping_ = false;   // the current header is past kMaxHeaders: not kept
  int over_limit_status_ = 0;  // 414 or 431, answered once the head has parsed
  bool complete_ = false;
  bool expect_continue_ = false;
  bool headers_done_ = false;
  int error_status_ = 400;
  std::string leftover_;
};

}  // namespace evstream::http
