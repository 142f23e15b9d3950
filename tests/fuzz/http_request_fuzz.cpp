// evstreamd's HTTP/1.1 request parser (daemon/src/http/request.cpp, over http_parser), fed the
// same bytes whole and in random chunks. Properties: it returns; both feedings yield the same
// requests and the same error status (a parser whose result depends on how TCP split the bytes
// is a bug); the accessors (headers, query, cookies, percent-decoding) return on any request.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "http/request.hpp"

using evstream::http::Request;
using evstream::http::RequestParser;

namespace {

struct Outcome {
  std::vector<std::string> requests;  // each request, flattened
  int error = 0;                      // HTTP status of the error, 0 when none
  bool operator==(const Outcome& o) const { return requests == o.requests && error == o.error; }
};

std::string Flatten(const Request& r) {
  std::string s = r.method + ' ' + r.target + ' ' + r.path + '?' + r.query + (r.keep_alive ? " ka" : "");
  for (const auto& [k, v] : r.headers) s += '\n' + k + ": " + v;
  return s + "\n\n" + r.body;
}

// Everything a handler may ask of a request, on hostile input.
void Exercise(Request& r) {
  for (const auto& [k, v] : r.QueryParams()) (void)k, (void)v;
  (void)r.QueryAll("channel");
  (void)r.QueryOne("lastEventId");
  (void)r.Cookie("evstream_token");
  (void)r.Header("last-event-id");
  (void)evstream::http::PercentDecode(r.target, true);
}

// Feeds `chunks` in order; collects every complete request (pipelining included).
Outcome Run(const std::vector<std::string>& chunks, size_t max_body) {
  RequestParser parser(max_body);
  Outcome out;
  for (const std::string& c : chunks) {
    RequestParser::Status s = parser.Feed(c.data(), c.size());
    while (s == RequestParser::Status::Complete) {
      Exercise(parser.request());
      out.requests.push_back(Flatten(parser.request()));
      s = parser.Next();
    }
    if (s == RequestParser::Status::Error) {
      out.error = parser.ErrorStatus();
      FUZZ_CHECK(out.error == 400 || out.error == 413 || out.error == 431, "unexpected error status");
      return out;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  size_t max_body = in.ConsumeIntegralInRange<size_t>(0, 4096);
  std::vector<size_t> cuts;
  for (int i = in.ConsumeIntegralInRange<int>(0, 16); i > 0; i--)
    cuts.push_back(in.ConsumeIntegralInRange<size_t>(1, 64));
  std::string bytes = in.ConsumeRemainingBytesAsString();

  Outcome whole = Run({bytes}, max_body);
  std::vector<std::string> chunks;
  size_t at = 0;
  for (size_t k = 0; at < bytes.size(); k++) {
    size_t n = cuts.empty() ? 1 : cuts[k % cuts.size()];
    chunks.push_back(bytes.substr(at, n));
    at += n;
  }
  Outcome split = Run(chunks, max_body);
  FUZZ_CHECK(whole == split, "the result depends on how the bytes were split");
  return 0;
}
