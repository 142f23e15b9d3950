// A Connection's write path: frames queued during a loop turn leave in one write (uv_try_write
// first, a pooled uv_write request for the rest), then what follows a completed write.
// (The rest of Connection: server.cpp; the Server: server_accept.cpp.)
#include <cstring>
#include <vector>

#include "core/guard.hpp"
#include "core/log.hpp"
#include "http/server.hpp"

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

Server::~Server() {
  for (Connection::WriteReq* w : free_reqs_) delete w;
}

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

}  // namespace evstream::http
