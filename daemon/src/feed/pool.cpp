#include "feed/pool.hpp"

#include <algorithm>
#include <cstdlib>

#include "core/guard.hpp"

namespace evstream::feed {
namespace {
// Replay jobs queue under their own key ("replay|" + client) so that a client's replays and its
// API requests take separate turns, and the dispatcher can cap the replays running.
const std::string kReplayPrefix = "replay|";
bool IsReplayKey(const std::string& key) { return key.compare(0, kReplayPrefix.size(), kReplayPrefix) == 0; }
}  // namespace

struct PgPool::Deferred {
  uv_idle_t idle;
  PgPool* pool;
  PgConnection::Callback cb;
  std::string why;
  bool overloaded;
};

std::string OptionsWithStatementTimeout(const std::string& conninfo, int ms) {
  std::string options;
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
  bool found = false;
  if (parsed) {
    for (PQconninfoOption* o = parsed; o->keyword; o++)
      if (std::string(o->keyword) == "options" && o->val) {
        options = o->val;
        found = true;
      }
    PQconninfoFree(parsed);
  }
  if (err) PQfreemem(err);
  if (!found)
    if (const char* env = std::getenv("PGOPTIONS")) options = env;
  if (ms > 0) options += (options.empty() ? "" : " ") + std::string("-c statement_timeout=") + std::to_string(ms);
  return options;
}

PgPool::PgPool(uv_loop_t* loop, const std::string& conninfo, PoolOptions opts)
    : loop_(loop), opts_(opts), queue_(opts.max_queued, opts.max_queued_per_client) {
  std::string options = OptionsWithStatementTimeout(conninfo, opts.statement_timeout_ms);
  for (int i = 0; i < opts.size; i++) {
    auto c = std::make_unique<PgConnection>(loop, conninfo, "pool-" + std::to_string(i));
    c->SetOptions(options);
    c->on_connected = [this] { Dispatch(); };
    conns_.push_back(std::move(c));
  }
}

void PgPool::Start() {
  for (auto& c : conns_) c->Start();
}

PgPool::~PgPool() {
  // Close() was not called: the pending reports are dropped with their handles.
  for (Deferred* d : deferred_) {
    uv_idle_stop(&d->idle);
    uv_close(reinterpret_cast<uv_handle_t*>(&d->idle), [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
  }
}

void PgPool::Close() {
  closed_ = true;
  for (auto& c : conns_) c->Close();
  // Reports still deferred run now: their owners may be gone once Close() has returned.
  auto deferred = std::move(deferred_);
  deferred_.clear();
  for (Deferred* d : deferred) {
    uv_idle_stop(&d->idle);
    PgConnection::Callback cb = std::move(d->cb);
    uv_close(reinterpret_cast<uv_handle_t*>(&d->idle), [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
    QueryResult r;
    r.error = "shutting down";
    core::Guard("pool result", [&] { cb(r); });
  }
  for (auto& j : queue_.Drain()) {
    QueryResult r;
    r.error = "shutting down";
    core::Guard("pool result", [&] { j.cb(r); });
  }
  Count();
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

// Reports asynchronously so that callers never re-enter themselves; never after Close().
void PgPool::FailLater(PgConnection::Callback cb, std::string why, bool overloaded) {
  auto* d = new Deferred{{}, this, std::move(cb), std::move(why), overloaded};
  uv_idle_init(loop_, &d->idle);
  d->idle.data = d;
  deferred_.push_back(d);
  uv_idle_start(&d->idle, [](uv_idle_t* h) {
    auto* d = static_cast<Deferred*>(h->data);
    auto& list = d->pool->deferred_;
    list.erase(std::find(list.begin(), list.end(), d));
    uv_idle_stop(h);
    QueryResult r;
    r.error = d->why;
    r.overloaded = d->overloaded;
    PgConnection::Callback cb = std::move(d->cb);
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
    core::Guard("pool result", [&] { cb(r); });
  });
}

void PgPool::Query(std::string sql, Params params, PgConnection::Callback cb, const std::string& key, Lane lane) {
  if (!home_ || home_->IsCurrent()) return QueryHere(std::move(sql), std::move(params), std::move(cb), key, lane);
  // From another loop: queued on the pool's loop (fair and bounded like any other job), and the
  // result goes back to the caller's loop, where the callback runs. Jobs on their way count
  // against the queue bound here already, so a flood waits in no mailbox: past the bound the
  // caller's loop fails the job (overloaded) on its next turn.
  core::Mailbox* back = core::Mailbox::Current();
  if (!back) return;  // not a loop thread: nothing can answer it (never the case)
  if (in_transit_.fetch_add(1, std::memory_order_relaxed) + queued_.load(std::memory_order_relaxed) >=
      opts_.max_queued) {
    in_transit_.fetch_sub(1, std::memory_order_relaxed);
    back->Post([cb = std::move(cb)] {
      QueryResult r;
      r.error = "too many database requests queued; retry later";
      r.overloaded = true;
      cb(r);
    });
    return;
  }
  bool posted = home_->Post([this, sql = std::move(sql), params = std::move(params), cb = std::move(cb), key, lane,
                             back]() mutable {
    in_transit_.fetch_sub(1, std::memory_order_relaxed);
    QueryHere(std::move(sql), std::move(params), [cb = std::move(cb), back](QueryResult& r) mutable {
      auto result = std::make_shared<QueryResult>(std::move(r));
      back->Post([cb = std::move(cb), result] { cb(*result); });
    }, key, lane);
  });
  if (!posted) in_transit_.fetch_sub(1, std::memory_order_relaxed);  // the pool's loop has stopped
}

void PgPool::QueryHere(std::string sql, Params params, PgConnection::Callback cb, const std::string& key,
                       Lane lane) {
  if (closed_) return FailLater(std::move(cb), "shutting down", false);
  if (AllDown()) return FailLater(std::move(cb), "database unavailable", false);
  std::string k = lane == Lane::Replay ? kReplayPrefix + key : key;
  Job job{std::move(sql), std::move(params), nullptr, lane};
  job.cb = std::move(cb);
  // Push moves the job only when it is accepted.
  if (queue_.Size() >= opts_.max_queued || queue_.SizeFor(k) >= opts_.max_queued_per_client)
    return FailLater(std::move(job.cb), "too many database requests queued; retry later", true);
  queue_.Push(k, std::move(job));
  Dispatch();
}

void PgPool::Dispatch() {
  DispatchJobs();
  Count();
}

void PgPool::Count() {
  queued_.store(queue_.Size(), std::memory_order_relaxed);
  if (metrics_) metrics_->db_queued = static_cast<int64_t>(queue_.Size());
}

void PgPool::DispatchJobs() {
  int replay_cap = opts_.size > 1 ? opts_.size - 1 : 1;
  for (auto& c : conns_) {
    if (queue_.Empty()) return;
    if (!c->Ready()) continue;
    auto job = queue_.Pop([&](const std::string& k) { return !IsReplayKey(k) || replays_running_ < replay_cap; });
    if (!job) return;  // only replays wait, and they have their share
    bool replay = job->lane == Lane::Replay;
    if (replay) replays_running_++;
    PgConnection* conn = c.get();
    // A callback that throws fails its own request only (logged); the queue moves on.
    bool sent = conn->Send(job->sql, job->params, [this, replay, cb = std::move(job->cb)](QueryResult& r) {
      if (replay) replays_running_--;
      core::Guard("pool result", [&] { cb(r); });
      if (!closed_) Dispatch();
    });
    if (!sent && replay) replays_running_--;
  }
}

}  // namespace evstream::feed
