// A few PgConnections shared by replays and the HTTP API. Jobs wait in a FairQueue keyed by
// client (token sub, else address): clients take turns, so one client's flood does not delay
// another's requests. The queue is bounded (in total and per client): past it a job fails at
// once with `overloaded` (the API answers 503 + Retry-After). Replays run on at most size-1
// connections at a time (when size > 1), so reads of the log never take every connection from
// POSTs. Jobs fail fast while the database is unreachable.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/mailbox.hpp"
#include "core/metrics.hpp"
#include "feed/fair_queue.hpp"
#include "feed/pg.hpp"

namespace evstream::feed {

struct PoolOptions {
  int size = 4;
  size_t max_queued = 2000;            // jobs waiting, all clients
  size_t max_queued_per_client = 200;  // jobs waiting, one client
  int statement_timeout_ms = 30000;    // 0: none
};

enum class Lane { Api, Replay };

class PgPool {
 public:
  PgPool(uv_loop_t* loop, const std::string& conninfo, PoolOptions opts);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;
  PgPool(uv_loop_t* loop, const std::string& conninfo, int size) : PgPool(loop, conninfo, PoolOptions{size}) {}
  void Start();
  void Close();
  // The callback runs exactly once, with the result or an error (never synchronously), and
  // never after Close() has returned: Close() fails what is queued or deferred ("shutting down").
  // key: the client to be fair between ("" = the daemon itself).
  // Callable from any loop (--threads) once SetHome() names the pool's own: the job is queued on
  // the pool's loop and the callback runs on the caller's (once; not at all when the caller's
  // loop has closed meanwhile, at shutdown).
  void Query(std::string sql, Params params, PgConnection::Callback cb, const std::string& key = "",
             Lane lane = Lane::Api);
  void SetHome(core::Mailbox* home) { home_ = home; }
  // The db_queued gauge (the pool's loop's metrics).
  void SetMetrics(core::Metrics* metrics) { metrics_ = metrics; }
  std::vector<int> BackendPids() const;
  size_t Queued() const { return queued_.load(std::memory_order_relaxed); }  // any thread

 private:
  struct Job {
    std::string sql;
    Params params;
    PgConnection::Callback cb;
    Lane lane = Lane::Api;
  };
  void QueryHere(std::string sql, Params params, PgConnection::Callback cb, const std::string& key, Lane lane);
  void Dispatch();  // DispatchJobs, then Count
  void DispatchJobs();
  void Count();     // the queue's length for Queued() and the gauge
  bool AllDown() const;
  struct Deferred;  // an error reported on the next loop iteration (uv_idle_t)
  void FailLater(PgConnection::Callback cb, std::string why, bool overloaded);

  uv_loop_t* loop_;
  PoolOptions opts_;
  std::vector<std::unique_ptr<PgConnection>> conns_;
  FairQueue<Job> queue_;
  int replays_running_ = 0;
  bool closed_ = false;
  std::vector<Deferred*> deferred_;  // pending error reports (freed in their close callback)
  core::Mailbox* home_ = nullptr;    // the pool's loop (nullptr: one loop)
  core::Metrics* metrics_ = nullptr;
  std::atomic<size_t> queued_{0};      // queue_'s length, for any thread
  std::atomic<size_t> in_transit_{0};  // jobs posted by other loops, not queued yet
};

// libpq `options` that add `-c statement_timeout=MS` to what the conninfo (or PGOPTIONS) sets.
std::string OptionsWithStatementTimeout(const std::string& conninfo, int ms);

}  // namespace evstream::feed
