#include "feed/pool.hpp"

#include "core/guard.hpp"

namespace evstream::feed {

PgPool::PgPool(uv_loop_t* loop, const std::string& conninfo, int size) : loop_(loop) {
  for (int i = 0; i < size; i++) {
    auto c = std::make_unique<PgConnection>(loop, conninfo, "pool-" + std::to_string(i));
    c->on_connected = [this] { Dispatch(); };
    conns_.push_back(std::move(c));
  }
}

void PgPool::Start() {
  for (auto& c : conns_) c->Start();
}

void PgPool::Close() {
  closed_ = true;
  for (auto& c : conns_) c->Close();
  auto jobs = std::move(queue_);
  queue_.clear();
  for (auto& j : jobs) {
    QueryResult r;
    r.error = "shutting down";
    core::Guard("pool result", [&] { j.cb(r); });
  }
}

std::vector<int> PgPool::BackendPids() const {
  std::vector<int> pids;
  for (const auto& c : conns_)
    if (c->BackendPid()) pids.push_back(c->BackendPid());
  return pids;
}

bool PgPool::AllDown() const {
  for (const auto& c : conns_)
    if (c->state() != PgConnection::State::Disconnected) return false;
  return true;
}

void PgPool::Query(std::string sql, Params params, PgConnection::Callback cb) {
  if (closed_ || AllDown() || queue_.size() >= kMaxQueued) {
    // Report asynchronously so that callers never re-enter themselves.
    struct Deferred {
      uv_idle_t idle;
      PgConnection::Callback cb;
      std::string why;
    };
    auto* d = new Deferred{{}, std::move(cb), closed_ ? "shutting down"
                                               : AllDown() ? "database unavailable"
                                                           : "too many queued database requests"};
    uv_idle_init(loop_, &d->idle);
    d->idle.data = d;
    uv_idle_start(&d->idle, [](uv_idle_t* h) {
      auto* d = static_cast<Deferred*>(h->data);
      uv_idle_stop(h);
      QueryResult r;
      r.error = d->why;
      core::Guard("pool result", [&] { d->cb(r); });
      uv_close(reinterpret_cast<uv_handle_t*>(h),
               [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
    });
    return;
  }
  queue_.push_back(Job{std::move(sql), std::move(params), std::move(cb)});
  Dispatch();
}

void PgPool::Dispatch() {
  for (auto& c : conns_) {
    if (queue_.empty()) return;
    if (!c->Ready()) continue;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    PgConnection* conn = c.get();
    // A callback that throws fails its own request only (logged); the queue moves on.
    conn->Send(job.sql, job.params, [this, cb = std::move(job.cb)](QueryResult& r) {
      core::Guard("pool result", [&] { cb(r); });
      if (!closed_) Dispatch();
    });
  }
}

}  // namespace evstream::feed
