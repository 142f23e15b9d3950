// A few PgConnections shared by replays and the HTTP API: jobs queue while every connection is
// busy, fail fast while the database is unreachable.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "feed/pg.hpp"

namespace evstream::feed {

class PgPool {
 public:
  PgPool(uv_loop_t* loop, const std::string& conninfo, int size);
  void Start();
  void Close();
  // The callback runs exactly once, with the result or an error (never synchronously).
  void Query(std::string sql, Params params, PgConnection::Callback cb);
  std::vector<int> BackendPids() const;

 private:
  struct Job {
    std::string sql;
    Params params;
    PgConnection::Callback cb;
  };
  void Dispatch();
  bool AllDown() const;

  uv_loop_t* loop_;
  std::vector<std::unique_ptr<PgConnection>> conns_;
  std::deque<Job> queue_;
  bool closed_ = false;
  static constexpr size_t kMaxQueued = 20000;
};

}  // namespace evstream::feed
