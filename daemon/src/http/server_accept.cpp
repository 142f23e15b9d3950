// The Server: the listening socket (shared by every loop with SO_REUSEPORT), accepting within the
// shared limits, and the once-per-loop-turn flush of streaming connections. (Connection: server.cpp.)
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "core/guard.hpp"
#include "core/log.hpp"
#include "http/server.hpp"

namespace evstream::http {

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
