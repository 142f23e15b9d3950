#include "http/server.hpp"

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
}

Connection::Connection(Server* server, uint64_t id)
    : server_(server), id_(id), parser_(server->options().max_body_bytes) {
  if (uv_timer_init(server_->loop(), timer_.get()) == 0) timer_.MarkInitialised();
  timer_->data = this;
}

Connection::~Connection() = default;

void Connection::ArmTimer(int ms) {
  uv_timer_start(timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Connection*>(t->data);
    core::Guard("http timer", [&] { self->OnTimer(); }, [&] { self->Close(); });
  }, ms, 0);
}

// Header, body or idle timeout (or the drain timeout of a closing connection). A request that
// has begun gets 408; an idle keep-alive connection just closes.
void Connection::OnTimer() {
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
  server_->pending_bytes_ -= pending_;
  server_->metrics_->pending_bytes = static_cast<int64_t>(server_->pending_bytes_);
  pending_ = 0;
}

bool Connection::ClaimSub(const std::string& sub) {
  if (sub == sub_) return true;
  int& n = server_->per_sub_[sub];
  if (n >= server_->opts_.max_connections_per_sub) {
    if (n == 0) server_->per_sub_.erase(sub);
    return false;
  }
  n++;
  if (!sub_.empty() && --server_->per_sub_[sub_] <= 0) server_->per_sub_.erase(sub_);
  sub_ = sub;
  return true;
}

// Counts this connection for `address` (moving it from the address it counted for before);
// false when that passes the per-address limit.
bool Connection::CountAddress(const std::string& address) {
  if (address == counted_address_) return server_->per_address_[address] <= server_->opts_.max_connections_per_address;
  UncountAddress();
  counted_address_ = address;
  return ++server_->per_address_[address] <= server_->opts_.max_connections_per_address;
}

void Connection::UncountAddress() {
  if (counted_address_.empty()) return;
  if (--server_->per_address_[counted_address_] <= 0) server_->per_address_.erase(counted_address_);
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
  if (state_ != State::ReadingRequest) return;  // a streaming client has nothing more to say
  if (discard_input_) return;
  size_t n = static_cast<size_t>(nread);
  if (server_->pending_bytes_ + n > server_->opts_.max_pending_bytes) {
    // The budget for bytes held in incomplete requests is spent: shed this request.
    server_->metrics_->shed++;
    core::LogWarn("unread-bytes budget spent; refusing a request",
                  {{"conn", id_}, {"peer", peer_}, {"pending_bytes", server_->pending_bytes_}});
    Response r = JsonError(503, "busy", "the server holds too many incoming requests; retry later");
    r.headers.emplace_back("Retry-After", RetryAfter());
    Refuse(r);
    return;
  }
  pending_ += n;
  server_->pending_bytes_ += n;
  server_->metrics_->pending_bytes = static_cast<int64_t>(server_->pending_bytes_);
  if (!got_bytes_) {
    got_bytes_ = true;
    ArmTimer(server_->options().header_timeout_ms);
  }
  auto st = parser_.Feed(buf->base, n);
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
  uv_timer_stop(timer_.get());
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
}

void Connection::Respond(const Response& r) {
  if (state_ != State::Handling) return;
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
  queue_.clear();
  queued_bytes_ = 0;
  if (overflow_frame_) Enqueue(overflow_frame_);
  CloseAfterFlush();
}

void Connection::Enqueue(Frame f) {
  if (state_ == State::Closing || !f || f->empty()) return;
  queued_bytes_ += f->size();
  queue_.push_back(std::move(f));
  if (!hold_) Flush();
}

void Connection::Flush() {
  if (in_flight_ || queue_.empty() || state_ == State::Closing) return;
  auto* w = new WriteReq;
  w->req.data = this;
  while (!queue_.empty() && w->frames.size() < kMaxBufsPerWrite) {
    Frame f = std::move(queue_.front());
    queue_.pop_front();
    w->bytes += f->size();
    w->bufs.push_back(uv_buf_init(const_cast<char*>(f->data()), static_cast<unsigned>(f->size())));
    w->frames.push_back(std::move(f));
  }
  queued_bytes_ -= w->bytes;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), w->bufs.data(),
                    static_cast<unsigned>(w->bufs.size()), [](uv_write_t* req, int status) {
                      auto* w = reinterpret_cast<WriteReq*>(req);
                      auto* self = static_cast<Connection*>(req->data);
                      ConnectionPtr keep = self->shared_from_this();
                      core::Guard("http write", [&] { self->OnWriteDone(w, status); }, [&] { self->Fail(); });
                    });
  if (rc != 0) {
    delete w;
    Close();
    return;
  }
  in_flight_ = w;
}

void Connection::OnWriteDone(WriteReq* w, int status) {
  in_flight_ = nullptr;
  if (status == 0) server_->metrics_->bytes_sent += w->bytes;
  delete w;
  if (state_ == State::Closing) return;
  if (status < 0) {
    Close();
    return;
  }
  if (!queue_.empty() && (!hold_ || close_after_flush_)) {
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
  close_after_flush_ = true;
  hold_ = false;
  ArmTimer(server_->options().drain_timeout_ms);
  if (!in_flight_ && queue_.empty())
    Shutdown();
  else
    Flush();
}

void Connection::Shutdown() {
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
  if (timer_.initialised()) uv_timer_stop(timer_.get());
  queue_.clear();
  queued_bytes_ = 0;
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
  if (!sub_.empty() && --server_->per_sub_[sub_] <= 0) server_->per_sub_.erase(sub_);
  server_->metrics_->http_connections--;
  auto cb = std::move(on_close);
  on_close = nullptr;
  if (cb) core::Guard("http close", [&] { cb(); });
  core::Guard("http close", [&] { attachment.reset(); });
  server_->Forget(this);  // may destroy *this
}

Server::Server(uv_loop_t* loop, ServerOptions opts, Handler handler, core::Metrics* metrics)
    : loop_(loop), opts_(opts), handler_(std::move(handler)), metrics_(metrics) {}

Server::~Server() = default;

int Server::Listen(const std::string& host, int port) {
  int rc = uv_tcp_init(loop_, listener_.get());
  if (rc != 0) return rc;
  listener_.MarkInitialised();
  listener_->data = this;
  sockaddr_storage addr{};
  if (host.find(':') != std::string::npos)
    rc = uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr));
  else
    rc = uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) return rc;
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
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_.get()), reinterpret_cast<uv_stream_t*>(&conn->tcp_)) != 0) {
    conn->Close();
    return;
  }
  if (static_cast<int>(conns_.size()) > opts_.max_connections) {
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
    if (c->state() == Connection::State::Streaming)
      c->CloseAfterFlush();  // FIN after what is already queued (bounded by the drain timeout)
    else
      c->Close();
  }
}

}  // namespace evstream::http
