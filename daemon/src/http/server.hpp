// The HTTP server: a listening uv_tcp_t and one Connection per client. A Connection reads one
// request at a time, hands it to the Handler, then either answers it (keep-alive or close) or
// becomes a stream of frames. Outbound frames queue with a byte count; at most one uv_write is
// in flight and everything queued meanwhile goes out merged in the next one (one writev).
#pragma once
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/metrics.hpp"
#include "core/timer_wheel.hpp"
#include "core/uv_handle.hpp"
#include "http/client_address.hpp"
#include "http/frame_queue.hpp"
#include "http/h2.hpp"
#include "http/limits.hpp"
#include "http/request.hpp"
#include "http/response.hpp"
#include "http/tls.hpp"

namespace evstream::http {

class Server;
class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;
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
  uint32_t h2_max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS
  // The limits above that count connections or bytes, shared by every loop's server (nullptr:
  // the server makes its own).
  std::shared_ptr<SharedLimits> shared;
  uint64_t first_id = 1;  // connection ids (in logs) start here: loop i uses i << 40 (distinct)
};

// One client connection, or one HTTP/2 stream of one (Protocol::H2Stream): the handler sees
// the same type either way. A TCP connection begins in Sniffing (after the TLS handshake, when
// TLS is on): ALPN h2 or the HTTP/2 client preface makes it the carrier of an H2Session
// (Protocol::H2); anything else is HTTP/1.1 as before.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { ReadingRequest, Handling, Streaming, Closing };
  enum class Protocol { Sniffing, Http1, H2, H2Stream };

  Connection(Server* server, uint64_t id);
  ~Connection();
  State state() const { return state_; }
  bool closing() const { return state_ == State::Closing; }
  uint64_t id() const { return id_; }
  std::string peer() const { return peer_; }
  Protocol protocol() const { return proto_; }
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

  // The server's timer wheel (deadlines of connections and of what they own).
  core::LoopWheel& wheel();

  // Owned per-connection state (e.g. the SSE session); released when the connection closes.
  std::shared_ptr<void> attachment;
  std::function<void()> on_close;

 private:
  friend class Server;
  friend class H2Session;
  struct WriteReq;
  void Begin(uv_stream_t* server_stream);
  bool CountAddress(const std::string& address);
  void UncountAddress();
  void StartReading();
  void OnRead(ssize_t nread, const uv_buf_t* buf);
  void OnPlain(const char* data, size_t n);  // bytes after TLS (or straight from the socket)
  void OnHttp1(const char* data, size_t n);
  void BecomeH2();
  void ShutdownH2();    // carrier: GOAWAY, open streams end, then close
  void MaybeFinishH2();  // carrier: close once nothing is left to say
  void HandleParse(RequestParser::Status st);
  void Dispatch();      // a complete request (HTTP/1.1 or one HTTP/2 stream) to the handler
  void FlushStream();   // H2Stream: let the data provider take what is queued
  void Enqueue(Frame f);
  void FlushDeferred();  // the server's check handle, once per loop turn (see Server::Defer)
  bool TryWrite(std::vector<uv_buf_t>& bufs, size_t* written);
  void OnWriteDone(WriteReq* req, int status);
  void AfterWrite();
  void Shutdown();
  void OnClosed();
  void ArmTimer(int ms);  // (re)arms this connection's one deadline on the server's wheel
  void StopTimer();
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
  core::TimerWheel::Id timer_ = 0;  // header/body/idle/drain deadline on Server::wheel_ (0: none)
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
  FrameQueue queue_;
  size_t queued_bytes_ = 0;
  WriteReq* in_flight_ = nullptr;
  bool flush_pending_ = false;  // in the server's list of connections to flush this turn
  Frame overflow_frame_;
  bool shutting_down_ = false;  // uv_shutdown requested

  Protocol proto_ = Protocol::Sniffing;
  std::string sniff_;             // first bytes, until they are or are not the HTTP/2 preface
  std::unique_ptr<TlsConn> tls_;  // TLS on this socket
  bool tls_closed_ = false;       // close_notify queued
  std::unique_ptr<H2Session> h2_;  // carrier: the HTTP/2 session
  // H2Stream: the carrier (valid until this stream closes), the stream id, how much of the
  // front queued frame the data provider already took, and flags of the provider.
  Connection* carrier_ = nullptr;
  int32_t stream_id_ = 0;
  size_t sent_offset_ = 0;
  bool deferred_ = false;   // the provider returned NGHTTP2_ERR_DEFERRED
  bool release_ = false;    // Flush() while held: the provider may send what is queued
  bool h2_closed_ = false;  // nghttp2 closed the stream (no RST_STREAM needed)
  int h2_error_status_ = 0;  // 413/431/503 found while the request arrived
  size_t h2_header_bytes_ = 0;
};

class Server {
 public:
  Server(uv_loop_t* loop, ServerOptions opts, Handler handler, core::Metrics* metrics);
  ~Server();
  // Binds and listens; returns a libuv error code (0 on success). With SO_REUSEPORT every loop's
  // server listens on the same port and the kernel spreads connections: kFirst checks first
  // that nobody else listens on the port (SO_REUSEPORT would share it with another process
  // that set it too), kJoin joins the port kFirst bound.
  enum class Share { kNo, kFirst, kJoin };
  int Listen(const std::string& host, int port, Share share = Share::kNo);
  int BoundPort() const;
  // Stops accepting and closes every connection.
  void Close();
  size_t ConnectionCount() const { return conns_.size(); }
  uv_loop_t* loop() const { return loop_; }
  const ServerOptions& options() const { return opts_; }
  core::Metrics* metrics() const { return metrics_; }
  // Deadlines of every connection and stream (timeouts, token expiry): one wheel, one uv timer.
  core::LoopWheel& wheel() { return wheel_; }
  // TLS for connections accepted from now on (nullptr: cleartext). Open connections keep theirs.
  void SetTls(std::shared_ptr<TlsContext> tls) { tls_ = std::move(tls); }
  bool tls() const { return tls_ != nullptr; }

 private:
  friend class Connection;
  friend class H2Session;
  void OnConnection(int status);
  void Forget(Connection* c);
  // One write per connection per loop turn: a streaming connection's frames wait in its queue
  // until the check handle (after the I/O callbacks of this turn) flushes it; an HTTP/2 carrier
  // is pumped once for all its streams. The idle handle runs while some connection waits, so
  // that the loop does not block in poll before the check (frames queued by a timer).
  void Defer(Connection* c);
  void OnCheck();
  Connection::WriteReq* TakeWriteReq();
  void GiveWriteReq(Connection::WriteReq* w);
  // Over the budget of unread request bytes (all loops): false, nothing taken.
  bool TakePending(size_t n);
  void ReleasePending(size_t n);
  SharedLimits& limits() { return *opts_.shared; }

  uv_loop_t* loop_;
  ServerOptions opts_;
  Handler handler_;
  core::Metrics* metrics_;
  core::LoopWheel wheel_;  // before conns_: outlives every connection
  core::UvHandle<uv_tcp_t> listener_;
  std::unordered_map<Connection*, ConnectionPtr> conns_;
  core::UvHandle<uv_check_t> flush_check_;
  core::UvHandle<uv_idle_t> flush_idle_;
  bool idle_running_ = false;
  std::vector<ConnectionPtr> dirty_, flushing_;  // swapped each turn: no allocation once grown
  std::vector<Connection::WriteReq*> free_reqs_;  // write requests to reuse (bounded)
  uint64_t next_id_ = 1;
  bool closed_ = false;
  std::shared_ptr<TlsContext> tls_;
  char read_buf_[64 * 1024];
};

}  // namespace evstream::http
