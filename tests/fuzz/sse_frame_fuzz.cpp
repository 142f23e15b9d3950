// SSE framing (daemon/src/sse/frame.cpp) and the way a resume position reaches it: the
// Last-Event-ID header / lastEventId query parameter of a parsed request. Input: "<event>\n
// <id>\n<data>" for Frame, the whole input once more as a request for the resume fields.
// Properties: a frame is one event: it ends with the only blank line, each line is an
// "id: ", "event: " or "data: " field, and data comes back line by line.
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "http/request.hpp"
#include "sse/frame.hpp"

namespace sse = evstream::sse;

namespace {

void CheckFrame(const std::string& f) {
  FUZZ_CHECK(f.size() >= 2 && f.compare(f.size() - 2, 2, "\n\n") == 0, "frame does not end with a blank line");
  std::string_view body(f.data(), f.size() - 1);  // every line ends with '\n'
  FUZZ_CHECK(body.find("\n\n") == std::string_view::npos, "blank line inside a frame");
  FUZZ_CHECK(body.find('\r') == std::string_view::npos, "CR inside a frame (ends a line for EventSource)");
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find('\n', at);
    std::string_view line = body.substr(at, end - at);
    FUZZ_CHECK(line.rfind("id: ", 0) == 0 || line.rfind("event: ", 0) == 0 || line.rfind("data: ", 0) == 0 ||
                   line == "data:" || line.rfind("retry: ", 0) == 0 || line.rfind(": ", 0) == 0 || line == ":",
               "a frame line that is not a field");
    at = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = fuzz::View(data, size);
  auto parts = fuzz::Split(input, '\n', 3);
  std::string event = parts[0], id = parts.size() > 1 ? parts[1] : "", body = parts.size() > 2 ? parts[2] : "";
  CheckFrame(sse::Frame(event, body, id));
  CheckFrame(sse::Frame("message", body));
  CheckFrame(sse::Comment(body));
  CheckFrame(sse::RetryHint(static_cast<int>(size) * 1000));

  // The same bytes as the head of a GET: where Last-Event-ID and lastEventId come from.
  std::string req = "GET /api/stream?" + std::string(input.substr(0, input.find_first_of(" \r\n"))) +
                    " HTTP/1.1\r\nLast-Event-ID: " + id + "\r\n\r\n";
  evstream::http::RequestParser parser(0);
  if (parser.Feed(req.data(), req.size()) == evstream::http::RequestParser::Status::Complete) {
    auto& r = parser.request();
    (void)r.QueryOne("lastEventId");
    (void)r.QueryAll("channel");
    (void)r.QueryAll("topic");
    (void)r.Header("last-event-id");
  }
  return 0;
}
