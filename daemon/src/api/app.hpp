// The daemon's parts wired together. Loop 0 (main()'s loop) runs what exists once per daemon —
// the feed, the outbox reader, the pool, presence, the publisher — and its own Front; --threads K
// adds K-1 loops on threads of their own, each with a Front that owns the connections it
// accepted. The feed hands every loop each batch it reads (hub::Fanout). main() owns loop 0 and
// the signals; App owns everything else, including the other loops' threads.
#pragma once
#include <uv.h>

#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "api/front.hpp"
#include "auth/jwt_verifier.hpp"
#include "core/config.hpp"
#include "core/mailbox.hpp"
#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/feed.hpp"
#include "feed/pool.hpp"
#include "http/static_files.hpp"
#include "hub/fanout.hpp"
#include "realtime/outbox.hpp"
#include "realtime/presence.hpp"
#include "realtime/publisher.hpp"

namespace evstream::api {

class App {
 public:
  App(uv_loop_t* loop, const core::Config& cfg);  // throws std::runtime_error on bad keys
  ~App();                                           // joins the other loops' threads
  App(const App&) = delete;
  App& operator=(const App&) = delete;
  int Start();                                      // libuv error code (0 on success)
  // Reads the static files into memory; false with *error when --web-root is too large.
  bool LoadStatic(std::string* error);
  void Shutdown();                                  // stop accepting, close everything
  // SIGHUP: re-reads the key files and swaps the verifier's keys; open streams stay. On any
  // error (unreadable file, weak key) the old keys stay and the error is logged.
  bool ReloadKeys();
  // SIGHUP too: re-reads --tls-cert/--tls-key; new handshakes use them, open connections keep
  // theirs. On error the old certificate stays and the error is logged.
  bool ReloadTls();
  int Port() const { return front_ ? front_->Port() : 0; }
  int Threads() const { return threads_; }

 private:
  // One more loop on a thread of its own.
  struct Worker {
    int index = 0;
    core::Mailbox mailbox;  // outlives the thread (others may post until they are joined)
    core::Metrics metrics;
    std::unique_ptr<Front> front;  // created, used and destroyed on the thread
    std::promise<int> listening;   // the Listen result; front is set before it
    std::thread thread;
  };
  void RunWorker(Worker* w, int port);
  // --stats-fold-ms: one evstream._stats_fold() at a time on the pool, so the stats summary keeps
  // up with the log whether or not anyone asks for stats.
  void FoldStats();
  int64_t Total(core::Stat<int64_t> core::Metrics::*field) const;

  uv_loop_t* loop_;
  core::Config cfg_;
  int threads_;
  core::Mailbox mailbox_;  // loop 0's
  core::Metrics metrics_;  // loop 0's: the feed, pool, outbox, presence, publisher and Front 0
  auth::JwtVerifier verifier_;
  hub::Fanout fanout_;
  feed::Feed feed_;
  realtime::Outbox outbox_;
  feed::PgPool pool_;
  realtime::Presence presence_;
  realtime::Publisher publisher_;
  http::StaticFiles static_files_;
  Shared shared_;
  std::unique_ptr<Front> front_;  // loop 0's
  std::vector<std::unique_ptr<Worker>> workers_;
  core::UvHandle<uv_timer_t> stats_fold_timer_;
  bool stats_fold_running_ = false;
  bool shut_down_ = false;
};

}  // namespace evstream::api
