#include "http/server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/guard.hpp"
#include "core/log.hpp"

namespace evstream::http {

// One uv_write with every frame queued at the time (the frames stay alive until it completes).
struct Connection::WriteReq {
  uv_write_t req;
  std::vector<Frame> frames;
  std::vector<uv_buf_t> bufs;
  size_t bytes = 0;
};

namespace {
constexpr size_t kMaxBufsPerWrite = 1024;
}  // namespace

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

// A streaming connection's frames wait for the end of this loop turn (Server::Defer): however
// many arrive meanwhile, they leave in one write. Answers and everything else go at once.
void Connection::Enqueue(Frame f) {
  if (state_ == State::Closing || !f || f->empty()) return;
  queued_bytes_ += f->size();
  queue_.push_back(std::move(f));
  if (hold_) return;
  if (state_ == State::Streaming && proto_ == Protocol::Http1)
    server_->Defer(this);
  else
    Flush();
}

// The stream's data provider may take what is queued; the carrier is pumped once this turn
// for all its streams.
void Connection::FlushStream() {
  if (state_ == State::Closing || !carrier_) return;
  if (hold_) release_ = true;
  if (deferred_) {
    deferred_ = false;
    carrier_->h2_->Resume(stream_id_);
  }
  server_->Defer(carrier_);
}

void Connection::FlushDeferred() {
  if (state_ == State::Closing) return;
  if (proto_ == Protocol::H2) {
    if (h2_) h2_->Pump();
    return;
  }
  if (!hold_ || close_after_flush_) Flush();
}

// uv_try_write of a streaming connection's frames: most writes complete at once and need no
// request. Returns false on a socket error; *written is what the kernel took.
bool Connection::TryWrite(std::vector<uv_buf_t>& bufs, size_t* written) {
  *written = 0;
  int rc = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs.data(), static_cast<unsigned>(bufs.size()));
  if (rc == UV_EAGAIN || rc == UV_ENOSYS) return true;
  if (rc < 0) return false;
  *written = static_cast<size_t>(rc);
  server_->metrics_->bytes_sent += *written;
  // Drop the buffers the kernel took whole; the first one left starts where it stopped.
  size_t left = *written, k = 0;
  while (k < bufs.size() && left >= bufs[k].len) left -= bufs[k++].len;
  bufs.erase(bufs.begin(), bufs.begin() + static_cast<std::ptrdiff_t>(k));
  if (!bufs.empty()) {
    bufs[0].base += left;
    bufs[0].len -= left;
  }
  return true;
}

void Connection::Flush() {
  if (proto_ == Protocol::H2Stream) {
    FlushStream();
    return;
  }
  if (in_flight_ || state_ == State::Closing) return;
  if (queue_.empty() && !(tls_ && tls_->PendingOut() > 0)) return;
  WriteReq* w = server_->TakeWriteReq();
  w->req.data = this;
  size_t plain = 0;
  while (!queue_.empty() && w->frames.size() < kMaxBufsPerWrite) {
    Frame f = std::move(queue_.front());
    queue_.pop_front();
    plain += f->size();
    w->bufs.push_back(uv_buf_init(const_cast<char*>(f->data()), static_cast<unsigned>(f->size())));
    w->frames.push_back(std::move(f));
  }
  queued_bytes_ -= plain;
  w->bytes = plain;
  if (tls_) {
    // The plaintext goes through TLS; one buffer of ciphertext goes out.
    for (const Frame& f : w->frames)
      if (!tls_->Encrypt(f->data(), f->size())) {
        server_->GiveWriteReq(w);
        Close();
        return;
      }
    w->frames.clear();
    w->bufs.clear();
    auto out = std::make_shared<const std::string>(tls_->TakeOut());
    if (out->empty()) {
      server_->GiveWriteReq(w);
      return;
    }
    w->bytes = out->size();
    w->bufs.push_back(uv_buf_init(const_cast<char*>(out->data()), static_cast<unsigned>(out->size())));
    w->frames.push_back(std::move(out));
  } else if (state_ == State::Streaming && proto_ == Protocol::Http1) {
    size_t written = 0;
    if (!TryWrite(w->bufs, &written)) {  // (w->frames keep the rest alive)
      server_->GiveWriteReq(w);
      Close();
      return;
    }
    w->bytes -= written;
    if (w->bufs.empty()) {  // all of it: no request, the frames are released now
      server_->GiveWriteReq(w);
      AfterWrite();
      return;
    }
  }
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), w->bufs.data(),
                    static_cast<unsigned>(w->bufs.size()), [](uv_write_t* req, int status) {
                      auto* w = reinterpret_cast<WriteReq*>(req);
                      auto* self = static_cast<Connection*>(req->data);
                      ConnectionPtr keep = self->shared_from_this();
                      core::Guard("http write", [&] { self->OnWriteDone(w, status); }, [&] { self->Fail(); });
                    });
  if (rc != 0) {
    server_->GiveWriteReq(w);
    Close();
    return;
  }
  in_flight_ = w;
}

void Connection::OnWriteDone(WriteReq* w, int status) {
  in_flight_ = nullptr;
  if (status == 0) server_->metrics_->bytes_sent += w->bytes;
  server_->GiveWriteReq(w);
  if (state_ == State::Closing) return;
  if (status < 0) {
    Close();
    return;
  }
  AfterWrite();
}

// What follows a completed write (asynchronous, or whole at once by uv_try_write): the next
// write, the shutdown of a closing connection, the next pipelined request.
void Connection::AfterWrite() {
  if (proto_ == Protocol::H2) {
    h2_->Pump();
    if (state_ == State::Closing || in_flight_) return;
    if (!queue_.empty() || (tls_ && tls_->PendingOut() > 0)) {
      Flush();
      return;
    }
    MaybeFinishH2();
    return;
  }
  if ((!queue_.empty() && (!hold_ || close_after_flush_)) || (tls_ && tls_->PendingOut() > 0)) {
    Flush();
    return;
  }
  if (queue_.empty() && close_after_flush_) {
    Shutdown();
    return;
  }
  if (state_ == State::ReadingRequest) HandleParse(parser_.Next());
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

// The wheel's tick bounds how late a deadline fires (never early): 50 ms, and 4096 slots make
// one revolution about 3.4 minutes (later deadlines wait their round in their slot).
Server::Server(uv_loop_t* loop, ServerOptions opts, Handler handler, core::Metrics* metrics)
    : loop_(loop), opts_(opts), handler_(std::move(handler)), metrics_(metrics), wheel_(loop, 50, 4096) {
  if (!opts_.shared) opts_.shared = std::make_shared<SharedLimits>();
  next_id_ = opts_.first_id;
  if (uv_check_init(loop_, flush_check_.get()) == 0) {
    flush_check_.MarkInitialised();
    flush_check_->data = this;
    uv_check_start(flush_check_.get(), [](uv_check_t* h) {
      core::Guard("http flush", [&] { static_cast<Server*>(h->data)->OnCheck(); });
    });
    uv_unref(flush_check_.handle());  // it does not keep the loop alive; the idle handle does
  }
  if (uv_idle_init(loop_, flush_idle_.get()) == 0) flush_idle_.MarkInitialised();
}

bool Server::TakePending(size_t n) {
  if (!opts_.shared->TakePending(n, opts_.max_pending_bytes)) return false;
  metrics_->pending_bytes += static_cast<int64_t>(n);  // this loop's part of the total
  return true;
}

void Server::ReleasePending(size_t n) {
  if (n == 0) return;
  opts_.shared->ReleasePending(n);
  metrics_->pending_bytes -= static_cast<int64_t>(n);
}

Server::~Server() {
  for (Connection::WriteReq* w : free_reqs_) delete w;
}

void Server::Defer(Connection* c) {
  if (c->flush_pending_ || c->closing()) return;
  if (!flush_check_.initialised()) {  // (no check handle: at once, as before)
    c->FlushDeferred();
    return;
  }
  c->flush_pending_ = true;
  dirty_.push_back(c->shared_from_this());
  if (!idle_running_ && flush_idle_.initialised() && uv_idle_start(flush_idle_.get(), [](uv_idle_t*) {}) == 0)
    idle_running_ = true;
}

// After this turn's I/O callbacks: one flush per waiting connection. What a flush queues in
// turn (rare) is flushed in a next round, a few at most, then in the next turn.
void Server::OnCheck() {
  for (int round = 0; round < 4 && !dirty_.empty(); round++) {
    flushing_.swap(dirty_);
    for (ConnectionPtr& c : flushing_) {
      c->flush_pending_ = false;
      core::Guard("http flush", [&] { c->FlushDeferred(); }, [&] { c->Close(); });
    }
    flushing_.clear();
  }
  if (dirty_.empty() && idle_running_) {
    uv_idle_stop(flush_idle_.get());
    idle_running_ = false;
  }
}

// Write requests are reused (with their vectors' capacity): no allocation per write once warm.
Connection::WriteReq* Server::TakeWriteReq() {
  if (free_reqs_.empty()) return new Connection::WriteReq;
  Connection::WriteReq* w = free_reqs_.back();
  free_reqs_.pop_back();
  return w;
}

void Server::GiveWriteReq(Connection::WriteReq* w) {
  w->frames.clear();
  w->bufs.clear();
  w->bytes = 0;
  if (free_reqs_.size() >= 256 || w->frames.capacity() > 64) {
    delete w;
    return;
  }
  free_reqs_.push_back(w);
}

int Server::Listen(const std::string& host, int port, Share share) {
  sockaddr_storage addr{};
  bool v6 = host.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr))
              : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) return rc;
  if (share == Share::kFirst && port != 0) {
    // SO_REUSEPORT would share the port with anyone else who set it (another evstreamd): make
    // sure nobody listens there first, with a plain bind (as without --threads).
    int probe = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as libuv's bind (TIME_WAIT)
    socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    rc = bind(probe, reinterpret_cast<sockaddr*>(&addr), len) == 0 ? 0 : uv_translate_sys_error(errno);
    close(probe);
    if (rc != 0) return rc;
  }
  rc = uv_tcp_init_ex(loop_, listener_.get(), v6 ? AF_INET6 : AF_INET);
  if (rc != 0) return rc;
  listener_.MarkInitialised();
  listener_->data = this;
  if (share != Share::kNo) {
    // libuv (1.44) has no flag for it: set it on the socket uv_tcp_init_ex created, before bind.
    uv_os_fd_t fd;
    int one = 1;
    if ((rc = uv_fileno(listener_.handle(), &fd)) != 0) return rc;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return uv_translate_sys_error(errno);
  }
  rc = uv_tcp_bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc != 0) return rc;
  return uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), 4096, [](uv_stream_t* s, int status) {
    core::Guard("http accept", [&] { static_cast<Server*>(s->data)->OnConnection(status); });
  });
}

int Server::BoundPort() const {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void Server::OnConnection(int status) {
  if (status < 0) {
    core::LogWarn("accept failed", {{"error", uv_err_name(status)}});
    return;
  }
  if (closed_) return;
  auto conn = std::make_shared<Connection>(this, next_id_++);
  if (uv_tcp_init(loop_, &conn->tcp_) != 0) return;
  conn->tcp_.data = conn.get();
  conn->tcp_open_ = true;
  conns_[conn.get()] = conn;
  metrics_->http_connections++;
  opts_.shared->AddOpen(1);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_.get()), reinterpret_cast<uv_stream_t*>(&conn->tcp_)) != 0) {
    conn->Close();
    return;
  }
  if (opts_.shared->Open() > opts_.max_connections) {
    core::LogWarn("too many connections; refusing one", {{"limit", opts_.max_connections}});
    conn->Close();
    return;
  }
  conn->Begin(reinterpret_cast<uv_stream_t*>(listener_.get()));
}

void Server::Forget(Connection* c) { conns_.erase(c); }

void Server::Close() {
  if (closed_) return;
  closed_ = true;
  listener_.Reset();
  std::vector<ConnectionPtr> all;
  for (auto& [p, c] : conns_) all.push_back(c);
  for (auto& c : all) {
    if (c->protocol() == Connection::Protocol::H2)
      c->ShutdownH2();  // GOAWAY; open streams end; then the connection closes
    else if (c->state() == Connection::State::Streaming)
      c->CloseAfterFlush();  // FIN after what is already queued (bounded by the drain timeout)
    else
      c->Close();
  }
}

}  // namespace evstream::http
