// HTTP/2 on one connection (nghttp2, server side). The connection that carries it (the
// "carrier", a Connection whose bytes turned out to be HTTP/2: ALPN h2, or the client preface
// on a cleartext connection) feeds it the bytes it reads and sends what it produces. Each
// HTTP/2 stream is a Connection of its own in H2Stream mode, so the route table, middleware and
// SSE sessions see the same Connection/Request/Response as over HTTP/1.1:
//   - its request is built from HEADERS (+ DATA) and handed to the server's handler;
//   - Respond() / StartStream() submit the response; the body and every SSE frame wait in that
//     stream's own queue (the same byte bound and slow-client drop as HTTP/1.1), and a data
//     provider moves them into DATA frames as HTTP/2 flow control allows (NGHTTP2_ERR_DEFERRED
//     while the queue is empty; nghttp2_session_resume_data when a frame arrives). A stream whose
//     reader stops only fills its own queue; the other streams of the connection go on.
#pragma once
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/response.hpp"

namespace evstream::http {

class Connection;
class Server;

// The HTTP/2 client connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").
extern const char kH2Preface[];
constexpr size_t kH2PrefaceLen = 24;

// The status and headers of an HTTP/1.1 response head ("HTTP/1.1 200 OK\r\nName: value\r\n...").
void ParseHead(const std::string& head, int* status, Headers* headers);

class H2Session {
 public:
  explicit H2Session(Connection* carrier);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Creates the session and queues the server's SETTINGS. False when nghttp2 cannot start.
  bool Start(uint32_t max_concurrent_streams);
  // Bytes read from the client. False: a connection error (the carrier closes after sending
  // what is queued, GOAWAY included).
  bool Receive(const char* data, size_t n);
  // Moves what nghttp2 has to send into the carrier's queue (unless a write is in flight: the
  // carrier calls again when it completes). Deferred while nghttp2 is calling us back.
  void Pump();
  // Neither side has anything more to say: the carrier may close.
  bool Finished() const;
  // Graceful shutdown: GOAWAY with the last stream id seen; streams already open finish.
  void Goaway();
  bool GoawaySent() const { return goaway_; }
  size_t StreamCount() const { return streams_.size(); }

  // For H2Stream Connections.
  void SubmitResponse(Connection* stream, int status, const Headers& headers, bool has_body);
  void Resume(int32_t stream_id);
  void Reset(int32_t stream_id);
  void Forget(int32_t stream_id);
  template <typename Fn>
  void ForEachStream(Fn fn) {
    std::vector<std::shared_ptr<Connection>> all;
    for (auto& [id, s] : streams_) all.push_back(s);
    for (auto& s : all) fn(s);
  }

 private:
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* ud);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* ud);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud);
  static ssize_t OnDataRead(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                            uint32_t* data_flags, nghttp2_data_source* source, void* ud);
  Connection* Find(int32_t stream_id) const;
  std::shared_ptr<Connection> FindPtr(int32_t stream_id) const;
  void Dispatch(Connection* s);

  Connection* carrier_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::shared_ptr<Connection>> streams_;
  int busy_ = 0;           // inside nghttp2 (recv or send): pumping waits
  bool pump_wanted_ = false;
  bool goaway_ = false;
  bool terminated_ = false;  // GOAWAY with an error: no new stream is ours
  double tokens_ = 0;     // streams that may still be opened now (Start fills the bucket)
  double tokens_at_ = 0;  // when tokens_ was last refilled (uv_now, ms)
};

}  // namespace evstream::http
