// The HTTP server: a listening uv_tcp_t and one Connection per client. A Connection reads one
// request at a time, hands it to the Handler, then either answers it (keep-alive or close) or
// becomes a stream of frames. Outbound frames queue with a byte count; at most one uv_write is
// in flight and everything queued meanwhile goes out merged in the next one (one writev).
#pragma once
#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "http/client_address.hpp"
#include "http/request.hpp"
#include "http/response.hpp"

namespace evstream::http {

class Server;
class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;
using Frame = std::shared_ptr<const std::string>;
using Handler = std::function<void(const ConnectionPtr&, Request&)>;

struct ServerOptions {
  size_t max_body_bytes = 1 << 20;
  size_t max_queue_bytes = 1 << 20;
  int max_connections = 10000;
  int max_connections_per_address = 256;  // past it: 429 + Retry-After
  int max_connections_per_sub = 64;       // checked by ClaimSub after authentication
  size_t max_pending_bytes = 64u << 20;   // bytes of incomplete requests, all connections: 503
  int header_timeout_ms = 10000;  // first byte (or accept) -> headers complete, else 408
  int body_timeout_ms = 30000;    // headers complete -> body complete, else 408
  int idle_timeout_ms = 60000;    // keep-alive: waiting for the next request's first byte
  int drain_timeout_ms = 5000;    // for the final write of a dropped or closing client
  int retry_after_seconds = 1;    // in 429 and 503 answers
  ProxyList trusted_proxies;      // peers whose X-Forwarded-For / X-Real-IP count
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { ReadingRequest, Handling, Streaming, Closing };

  Connection(Server* server, uint64_t id);
  ~Connection();
  State state() const { return state_; }
  bool closing() const { return state_ == State::Closing; }
  uint64_t id() const { return id_; }
  std::string peer() const { return peer_; }
  const std::string& address() const { return address_; }  // the client's IP, without the port
  // The client's IP for the current request: the socket's, or the one a trusted proxy names.
  const std::string& client_address() const { return client_address_; }

  // Handling -> answer; then the next request (keep-alive) or a clean close.
  void Respond(const Response& r);
  // Counts this connection against the token `sub` (per-sub limit); false when that sub already
  // holds its limit of connections (the caller answers 429 with RetryAfter()).
  bool ClaimSub(const std::string& sub);
  std::string RetryAfter() const;
  // Handling -> Streaming: sends the response head; Send() then appends frames.
  void StartStream(const std::string& head);
  // Streaming: queue a frame. Past the hard limit the unsent queue is dropped, the overflow
  // frame (if any) is sent and the connection closes. Returns false once dropped.
  bool Send(Frame frame);
  void DropSlowClient();
  // While held, Send() queues without writing; Flush() writes what is queued (batch_ms).
  void SetHold(bool hold) { hold_ = hold; }
  void Flush();
  void SetOverflowFrame(Frame f) { overflow_frame_ = std::move(f); }
  size_t QueuedBytes() const { return queued_bytes_; }
  // Sends the queue, then shuts down and closes (bounded by the drain timeout).
  void CloseAfterFlush();
  void Close();
  // Recovery after an exception in work done for this connection (already logged by the
  // guard): a request being handled gets 500 and the connection closes; otherwise it closes.
  void Fail();

  // Owned per-connection state (e.g. the SSE session); released when the connection closes.
  std::shared_ptr<void> attachment;
  std::function<void()> on_close;

 private:
  friend class Server;
  struct WriteReq;
  void Begin(uv_stream_t* server_stream);
  bool CountAddress(const std::string& address);
  void UncountAddress();
  void StartReading();
  void OnRead(ssize_t nread, const uv_buf_t* buf);
  void HandleParse(RequestParser::Status st);
  void Enqueue(Frame f);
  void OnWriteDone(WriteReq* req, int status);
  void Shutdown();
  void OnClosed();
  void ArmTimer(int ms);
  void OnTimer();
  // Answers before the request is complete (408, 503) and closes; the rest of the request is
  // read and discarded until the client closes or the drain timeout, so the answer is not lost
  // to a TCP reset.
  void Refuse(const Response& r);
  void ReleasePending();

  Server* server_;
  uint64_t id_;
  State state_ = State::ReadingRequest;
  uv_tcp_t tcp_;
  bool tcp_open_ = false;
  core::UvHandle<uv_timer_t> timer_;
  RequestParser parser_;
  std::string peer_;
  std::string address_;         // the socket peer's IP, without the port
  std::string client_address_;  // per request: address_, or what a trusted proxy says
  std::string counted_address_;  // the address this connection counts for in per_address_
  bool keep_alive_ = false;
  bool hold_ = false;
  bool close_after_flush_ = false;
  bool reading_ = false;
  bool got_bytes_ = false;      // the current request has begun
  bool body_timer_ = false;     // the body timeout is armed
  bool discard_input_ = false;  // refused: reading only to drain
  int refuse_status_ = 0;       // 429: over the per-address limit (answered once the request is in)
  size_t pending_ = 0;          // bytes of the current request counted in the server's budget
  std::string sub_;             // counted against this token sub
  std::deque<Frame> queue_;
  size_t queued_bytes_ = 0;
  WriteReq* in_flight_ = nullptr;
  Frame overflow_frame_;
};

class Server {
 public:
  Server(uv_loop_t* loop, ServerOptions opts, Handler handler, core::Metrics* metrics);
  ~Server();
  // Binds and listens; returns a libuv error code (0 on success).
  int Listen(const std::string& host, int port);
  int BoundPort() const;
  // Stops accepting and closes every connection.
  void Close();
  size_t ConnectionCount() const { return conns_.size(); }
  uv_loop_t* loop() const { return loop_; }
  const ServerOptions& options() const { return opts_; }
  core::Metrics* metrics() const { return metrics_; }

 private:
  friend class Connection;
  void OnConnection(int status);
  void Forget(Connection* c);
  std::unordered_map<std::string, int> per_address_;
  std::unordered_map<std::string, int> per_sub_;
  size_t pending_bytes_ = 0;

  uv_loop_t* loop_;
  ServerOptions opts_;
  Handler handler_;
  core::Metrics* metrics_;
  core::UvHandle<uv_tcp_t> listener_;
  std::unordered_map<Connection*, ConnectionPtr> conns_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  char read_buf_[64 * 1024];
};

}  // namespace evstream::http
