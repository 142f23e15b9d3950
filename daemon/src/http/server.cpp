#include "http/server.hpp"

#include <cstring>
#include <vector>

#include "core/guard.hpp"
#include "core/log.hpp"

namespace evstream::http {

Connection::Connection(Server* server, uint64_t id)
    : server_(server), id_(id), parser_(server->options().max_body_bytes) {}

Connection::~Connection() {
  if (timer_ != 0) server_->wheel_.Stop(&timer_);
}

core::LoopWheel& Connection::wheel() { return server_->wheel_; }

void Connection::ArmTimer(int ms) {
  server_->wheel_.Stop(&timer_);
  if (state_ == State::Closing) return;
  timer_ = server_->wheel_.Start(static_cast<uint64_t>(ms), [this] {
    timer_ = 0;
    ConnectionPtr keep = shared_from_this();
    core::Guard("http timer", [&] { OnTimer(); }, [&] { Close(); });
  });
}

void Connection::StopTimer() { server_->wheel_.Stop(&timer_); }

// Header, body or idle timeout (or the drain timeout of a closing connection). A request that
// has begun gets 408; an idle keep-alive connection just closes.
void Connection::OnTimer() {
  if (proto_ == Protocol::H2) {
    // The carrier: idle with no stream (say GOAWAY and give the client the drain time to
    // notice), or that drain time is over.
    if (h2_->GoawaySent() || close_after_flush_) {
      Close();
      return;
    }
    if (h2_->StreamCount() > 0) return;
    h2_->Goaway();
    ArmTimer(server_->options().drain_timeout_ms);
    MaybeFinishH2();
    return;
  }
  if (state_ == State::ReadingRequest && !close_after_flush_ && got_bytes_ && !discard_input_) {
    core::LogInfo("request timeout", {{"conn", id_}, {"peer", peer_}, {"stage", body_timer_ ? "body" : "headers"}});
    server_->metrics_->request_timeouts++;
    Refuse(JsonError(408, "request_timeout",
                     body_timer_ ? "the request body did not arrive in time" : "the request headers did not arrive in time"));
    return;
  }
  Close();
}

std::string Connection::RetryAfter() const { return std::to_string(server_->options().retry_after_seconds); }

void Connection::Refuse(const Response& r) {
  if (state_ == State::Closing || close_after_flush_) return;
  ReleasePending();
  discard_input_ = true;
  state_ = State::Handling;
  keep_alive_ = false;
  Respond(r);
}

void Connection::ReleasePending() {
  server_->ReleasePending(pending_);
  pending_ = 0;
}

bool Connection::ClaimSub(const std::string& sub) {
  if (sub == sub_) return true;
  if (!server_->limits().ClaimSub(sub_, sub, server_->opts_.max_connections_per_sub)) return false;
  sub_ = sub;
  return true;
}

// Counts this connection for `address` (moving it from the address it counted for before);
// false when that passes the per-address limit.
bool Connection::CountAddress(const std::string& address) {
  int max = server_->opts_.max_connections_per_address;
  if (address == counted_address_) return server_->limits().AddressCount(address) <= max;
  int n = server_->limits().MoveAddress(counted_address_, address);
  counted_address_ = address;
  return n <= max;
}

void Connection::UncountAddress() {
  if (counted_address_.empty()) return;
  server_->limits().MoveAddress(counted_address_, "");
  counted_address_.clear();
}

void Connection::Begin(uv_stream_t* server_stream) {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char ip[64] = {0};
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      uv_ip4_name(a, ip, sizeof ip);
      address_ = ip;
      peer_ = address_ + ":" + std::to_string(ntohs(a->sin_port));
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      uv_ip6_name(a, ip, sizeof ip);
      address_ = ip;
      peer_ = "[" + address_ + "]:" + std::to_string(ntohs(a->sin6_port));
    }
  }
  client_address_ = address_;
  uv_tcp_nodelay(&tcp_, 1);
  if (server_->tls_) tls_ = std::make_unique<TlsConn>(server_->tls_);
  // Over the per-address limit: read the request (bounded by the timeouts and the unread-bytes
  // budget), answer 429 and close. A trusted proxy's connections are counted per request, under
  // the client address it names (CountAddress in HandleParse).
  if (!address_.empty() && !server_->opts_.trusted_proxies.Contains(address_) && !CountAddress(address_))
    refuse_status_ = 429;
  got_bytes_ = true;  // the first request's header timeout runs from the accept
  ArmTimer(server_->options().header_timeout_ms);
  StartReading();
}

void Connection::StartReading() {
  if (reading_ || state_ == State::Closing) return;
  int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(nullptr, 0);  // (UV_ENOBUFS for the read callback if this fails)
        core::Guard("http alloc", [&] {
          *buf = uv_buf_init(self->server_->read_buf_, sizeof self->server_->read_buf_);
        });
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(s->data);
        ConnectionPtr keep = self->shared_from_this();  // the handler may drop its last reference
        core::Guard("http read", [&] { self->OnRead(nread, buf); }, [&] { self->Fail(); });
      });
  if (rc != 0) {
    core::LogWarn("uv_read_start failed", {{"conn", id_}, {"error", uv_err_name(rc)}});
    Close();
    return;
  }
  reading_ = true;
}

void Connection::OnRead(ssize_t nread, const uv_buf_t* buf) {
  if (state_ == State::Closing) return;
  if (nread < 0) {
    Close();  // EOF or error: the client went away
    return;
  }
  if (nread == 0) return;
  size_t n = static_cast<size_t>(nread);
  if (!tls_) {
    OnPlain(buf->base, n);
    return;
  }
  std::string plain;
  bool was_done = tls_->HandshakeDone();
  if (!tls_->Receive(buf->base, n, &plain)) {
    core::LogDebug("tls: closing", {{"conn", id_}, {"peer", peer_}, {"handshake", tls_->HandshakeDone()}});
    Close();
    return;
  }
  if (!was_done && tls_->HandshakeDone() && tls_->Alpn() == "h2") BecomeH2();
  if (!plain.empty() && state_ != State::Closing) OnPlain(plain.data(), plain.size());
  if (state_ != State::Closing && tls_->PendingOut() > 0) Flush();
}

// Plaintext from the client. The first bytes of a connection decide its protocol: the HTTP/2
// client preface (prior knowledge, h2c) makes it an HTTP/2 carrier; anything else is HTTP/1.1.
void Connection::OnPlain(const char* data, size_t n) {
  if (proto_ == Protocol::H2) {
    if (!h2_->Receive(data, n)) {
      core::LogDebug("h2: connection error", {{"conn", id_}, {"peer", peer_}});
      Close();
      return;
    }
    h2_->Pump();
    return;
  }
  if (proto_ == Protocol::Sniffing) {
    sniff_.append(data, n);
    size_t cmp = std::min(sniff_.size(), kH2PrefaceLen);
    if (std::memcmp(sniff_.data(), kH2Preface, cmp) == 0) {
      if (sniff_.size() < kH2PrefaceLen) return;  // could still be the preface
      std::string all = std::move(sniff_);
      sniff_.clear();
      BecomeH2();
      if (state_ != State::Closing) OnPlain(all.data(), all.size());
      return;
    }
    proto_ = Protocol::Http1;
    std::string all = std::move(sniff_);
    sniff_.clear();
    OnHttp1(all.data(), all.size());
    return;
  }
  OnHttp1(data, n);
}

// This connection carries HTTP/2 from now on: its reads feed the session, the session's
// output is its queue. The header timeout no longer applies; the idle timeout runs while no
// stream is open.
void Connection::BecomeH2() {
  proto_ = Protocol::H2;
  h2_ = std::make_unique<H2Session>(this);
  if (!h2_->Start(server_->opts_.h2_max_concurrent_streams)) {
    core::LogWarn("h2: cannot start a session", {{"conn", id_}});
    Close();
    return;
  }
  server_->metrics_->h2_connections++;
  ArmTimer(server_->options().idle_timeout_ms);
  h2_->Pump();
}

void Connection::ShutdownH2() {
  if (state_ == State::Closing || !h2_) return;
  h2_->Goaway();
  h2_->ForEachStream([](const ConnectionPtr& s) {
    if (s->state() == State::Streaming)
      s->CloseAfterFlush();  // END_STREAM after what is queued (bounded by the drain timeout)
    else
      s->Close();
  });
  if (state_ == State::Closing) return;
  ArmTimer(server_->options().drain_timeout_ms);
  h2_->Pump();
}

void Connection::MaybeFinishH2() {
  if (state_ == State::Closing || !h2_ || in_flight_ || !queue_.empty() || shutting_down_) return;
  if (tls_ && tls_->PendingOut() > 0) return;
  if (h2_->Finished() || (h2_->GoawaySent() && h2_->StreamCount() == 0)) {
    close_after_flush_ = true;
    Shutdown();
  }
}

void Connection::OnHttp1(const char* data, size_t n) {
  if (state_ != State::ReadingRequest) return;  // a streaming client has nothing more to say
  if (discard_input_) return;
  if (!server_->TakePending(n)) {
    // The budget for bytes held in incomplete requests is spent: shed this request.
    server_->metrics_->shed++;
    core::LogWarn("unread-bytes budget spent; refusing a request",
                  {{"conn", id_}, {"peer", peer_}, {"pending_bytes", server_->limits().Pending()}});
    Response r = JsonError(503, "busy", "the server holds too many incoming requests; retry later");
    r.headers.emplace_back("Retry-After", RetryAfter());
    Refuse(r);
    return;
  }
  pending_ += n;
  if (!got_bytes_) {
    got_bytes_ = true;
    ArmTimer(server_->options().header_timeout_ms);
  }
  auto st = parser_.Feed(data, n);
  if (st == RequestParser::Status::NeedMore && parser_.HeadersDone() && !body_timer_) {
    body_timer_ = true;
    ArmTimer(server_->options().body_timeout_ms);
  }
  if (parser_.TakeExpectContinue() && st == RequestParser::Status::NeedMore)
    Enqueue(std::make_shared<const std::string>("HTTP/1.1 100 Continue\r\n\r\n"));
  HandleParse(st);
}

void Connection::HandleParse(RequestParser::Status st) {
  if (st == RequestParser::Status::NeedMore || state_ != State::ReadingRequest) return;
  state_ = State::Handling;
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
  StopTimer();
  ReleasePending();
  body_timer_ = false;
  server_->metrics_->http_requests++;
  if (st == RequestParser::Status::Error) {
    keep_alive_ = false;
    int status = parser_.ErrorStatus();
    Respond(JsonError(status, status == 413 ? "body_too_large" : "bad_request", StatusText(status)));
    return;
  }
  keep_alive_ = parser_.request().keep_alive && !server_->closed_;
  Dispatch();
}

// The common tail of a complete request, HTTP/1.1 or HTTP/2: per-address limits, text checks,
// the handler.
void Connection::Dispatch() {
  // Each request on a proxy's keep-alive connection may come from another client: the
  // connection counts for the address of the request it serves now.
  client_address_ = ClientAddress(address_, server_->options().trusted_proxies, parser_.request());
  if (client_address_ != address_ || server_->opts_.trusted_proxies.Contains(address_))
    refuse_status_ = CountAddress(client_address_) ? 0 : 429;
  if (refuse_status_ == 429) {
    server_->metrics_->limited++;
    keep_alive_ = false;
    Response r = JsonError(429, "too_many_connections",
                           "too many connections from this address (limit " +
                               std::to_string(server_->opts_.max_connections_per_address) + ")");
    r.headers.emplace_back("Retry-After", RetryAfter());
    Respond(r);
    // An HTTP/2 connection over its address's limit ends (GOAWAY) once this answer is out, as an
    // HTTP/1.1 one closes; a trusted proxy's connection stays for its other clients.
    if (proto_ == Protocol::H2Stream && carrier_ && carrier_->refuse_status_ == 429) carrier_->ShutdownH2();
    return;
  }
  // Bytes that must be text (path, query parameters, the headers we read as text) are refused
  // here, once, when they are not UTF-8: nothing behind this point sees them.
  if (auto bad = FirstInvalidText(parser_.request())) {
    Respond(JsonError(400, "bad_request", *bad + " must be valid UTF-8 (percent-decoded)"));
    return;
  }
  core::LogDebug("request", {{"conn", id_}, {"client", client_address_}, {"peer", peer_},
                             {"method", parser_.request().method}, {"path", parser_.request().path}});
  auto self = shared_from_this();
  server_->handler_(self, parser_.request());
  // An HTTP/1.1 stream reads no further request: its parsed request (headers, token, body) is
  // freed now rather than held for the life of the stream.
  if (proto_ == Protocol::Http1 && state_ == State::Streaming) parser_.ReleaseRequest();
}

void Connection::Respond(const Response& r) {
  if (state_ != State::Handling) return;
  if (proto_ == Protocol::H2Stream) {
    if (!carrier_) return;
    state_ = State::Streaming;
    close_after_flush_ = true;  // END_STREAM once the body is out
    // The answer may wait on flow control (a client that never opens its window): the drain
    // timeout bounds it (re-armed whenever the data provider makes progress), then RST_STREAM.
    ArmTimer(server_->options().drain_timeout_ms);
    std::string().swap(parser_.request().body);  // the handler is done with the request body
    bool body = !r.head_only && !r.body.empty();
    if (body) {
      queue_.push_back(std::make_shared<const std::string>(r.body));
      queued_bytes_ += r.body.size();
    }
    Headers h = r.headers;
    if (r.status != 204 && r.status != 304) h.emplace_back("content-length", std::to_string(r.body.size()));
    carrier_->h2_->SubmitResponse(this, r.status, h, body);
    return;
  }
  Enqueue(std::make_shared<const std::string>(Serialize(r, keep_alive_)));
  if (!keep_alive_) {
    CloseAfterFlush();
    return;
  }
  state_ = State::ReadingRequest;
  got_bytes_ = false;
  ArmTimer(server_->options().idle_timeout_ms);
  StartReading();
  // A pipelined request may already be buffered: parse it once this answer is on its way.
  if (!in_flight_) HandleParse(parser_.Next());
}

void Connection::StartStream(const std::string& head) {
  if (state_ != State::Handling) return;
  if (proto_ == Protocol::H2Stream) {
    if (!carrier_) return;
    state_ = State::Streaming;
    StopTimer();
    std::string().swap(parser_.request().body);
    int status = 200;
    Headers h;
    ParseHead(head, &status, &h);
    carrier_->h2_->SubmitResponse(this, status, h, true);
    return;
  }
  state_ = State::Streaming;
  Enqueue(std::make_shared<const std::string>(head));
  StartReading();  // only to notice the client leaving
}

bool Connection::Send(Frame frame) {
  if (state_ != State::Streaming || close_after_flush_) return false;
  Enqueue(std::move(frame));
  // Hard limit (the SSE session keeps well below it by catching up from the log instead).
  if (queued_bytes_ > server_->options().max_queue_bytes && queue_.size() > 1) {
    DropSlowClient();
    return false;
  }
  return true;
}

// Too slow: drop what it has not been sent (it resumes from the log by Last-Event-ID), say
// why when the socket lets us, and close.
void Connection::DropSlowClient() {
  if (state_ == State::Closing || close_after_flush_) return;
  server_->metrics_->slow_client_drops++;
  core::LogWarn("dropping slow client",
                {{"conn", id_}, {"peer", peer_}, {"client", client_address_}, {"queued_bytes", queued_bytes_}});
  // An HTTP/2 stream keeps the frame its data provider has begun: frames stay whole.
  Frame begun = proto_ == Protocol::H2Stream && sent_offset_ > 0 && !queue_.empty() ? queue_.front() : nullptr;
  queue_.clear();
  queued_bytes_ = 0;
  if (begun) {
    queued_bytes_ = begun->size();
    queue_.push_back(std::move(begun));
  }
  if (overflow_frame_) Enqueue(overflow_frame_);
  CloseAfterFlush();
}

void Connection::CloseAfterFlush() {
  if (state_ == State::Closing || close_after_flush_) return;
  if (proto_ == Protocol::H2) {
    ShutdownH2();
    return;
  }
  close_after_flush_ = true;
  hold_ = false;
  ArmTimer(server_->options().drain_timeout_ms);
  if (proto_ == Protocol::H2Stream) {
    FlushStream();  // the data provider ends the stream once the queue is out
    return;
  }
  if (!in_flight_ && queue_.empty())
    Shutdown();
  else
    Flush();
}

void Connection::Shutdown() {
  if (state_ == State::Closing || shutting_down_) return;
  if (tls_ && !tls_closed_ && tls_->HandshakeDone()) {
    tls_closed_ = true;
    tls_->CloseNotify();
    if (tls_->PendingOut() > 0 && !in_flight_) {
      close_after_flush_ = true;
      Flush();  // OnWriteDone comes back here once the alert is out
      return;
    }
  }
  shutting_down_ = true;
  auto* req = new uv_shutdown_t;
  req->data = this;
  int rc = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), [](uv_shutdown_t* req, int) {
    auto* self = static_cast<Connection*>(req->data);
    delete req;
    core::Guard("http shutdown", [&] {
      // A refused request may still be arriving: read it away until the client closes (or the
      // drain timeout) so that our answer is not lost to a reset.
      if (self->discard_input_ && self->state_ != State::Closing) {
        self->StartReading();
        return;
      }
      self->Close();
    }, [&] { self->Close(); });
  });
  if (rc != 0) {
    delete req;
    Close();
  }
}

void Connection::Close() {
  if (state_ == State::Closing) return;
  state_ = State::Closing;
  StopTimer();
  queue_.clear();
  queued_bytes_ = 0;
  if (proto_ == Protocol::H2Stream) {
    // Forget this stream, then reset it unless nghttp2 already closed it (OnClosed may drop
    // the last reference to *this).
    Connection* carrier = carrier_;
    int32_t id = stream_id_;
    bool reset = !h2_closed_ && carrier && !carrier->closing();
    OnClosed();
    if (reset) carrier->h2_->Reset(id);
    return;
  }
  if (h2_) h2_->ForEachStream([](const ConnectionPtr& s) { s->Close(); });
  if (!tcp_open_) {
    OnClosed();
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
           [](uv_handle_t* h) { static_cast<Connection*>(h->data)->OnClosed(); });
}

void Connection::Fail() {
  if (state_ == State::Handling) {
    keep_alive_ = false;
    core::Guard("http 500", [&] { Respond(JsonError(500, "internal_error", "internal error")); });
    if (state_ == State::Handling) Close();
    return;
  }
  Close();
}

// Last callback of the connection: release its state; the server drops the last reference
// (whatever the owners' clean-up throws, the connection is forgotten: no leak).
void Connection::OnClosed() {
  tcp_open_ = false;
  ReleasePending();
  UncountAddress();
  server_->limits().ReleaseSub(sub_);
  sub_.clear();
  server_->limits().AddOpen(-1);
  if (proto_ == Protocol::H2Stream)
    server_->metrics_->h2_streams--;
  else
    server_->metrics_->http_connections--;
  if (proto_ == Protocol::H2) server_->metrics_->h2_connections--;
  auto cb = std::move(on_close);
  on_close = nullptr;
  if (cb) core::Guard("http close", [&] { cb(); });
  core::Guard("http close", [&] { attachment.reset(); });
  if (proto_ == Protocol::H2Stream) {
    Connection* carrier = std::exchange(carrier_, nullptr);
    if (carrier && carrier->h2_) carrier->h2_->Forget(stream_id_);  // may destroy *this
    return;
  }
  server_->Forget(this);  // may destroy *this
}

}  // namespace evstream::http
