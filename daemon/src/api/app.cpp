#include "api/app.hpp"

#include <sched.h>

#include <algorithm>
#include <stdexcept>

#include "core/log.hpp"
#include "http/static_files.hpp"

namespace evstream::api {
namespace {
auth::VerifierConfig VerifierFrom(const core::Config& c) {
  auth::VerifierConfig v;
  v.hs256_secret = c.jwt_secret;
  v.hs256_secret_source = c.jwt_secret_file.empty() ? "--jwt-secret" : "--jwt-secret-file " + c.jwt_secret_file;
  v.public_key_pem = c.jwt_public_key_pem;
  v.jwks_json = c.jwt_jwks_json;
  v.allow_no_exp = c.jwt_allow_no_exp;
  v.max_age_seconds = c.jwt_max_age_seconds;
  v.audience = c.jwt_audience;
  v.issuer = c.jwt_issuer;
  v.leeway_seconds = c.jwt_leeway_seconds;
  return v;
}
// The cores this process may run on (its CPU affinity, e.g. taskset or a cpuset), at least 1.
int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
feed::FeedOptions FeedFrom(const core::Config& c) {
  feed::FeedOptions f;
  f.conninfo = c.database_url;
  f.batch_size = c.batch_size;
  f.held_back_ms = c.held_back_ms;
  f.poll_ms = c.poll_ms;
  f.pg_options = feed::OptionsWithStatementTimeout(c.database_url, c.statement_timeout_ms);
  return f;
}
realtime::OutboxOptions OutboxFrom(const core::Config& c) {
  realtime::OutboxOptions o;
  o.conninfo = c.database_url;
  o.batch_size = c.batch_size;
  o.gap_recheck_ms = c.held_back_ms;
  o.poll_ms = c.poll_ms;
  o.retention_ms = c.outbox_retention_ms;
  o.pg_options = feed::OptionsWithStatementTimeout(c.database_url, c.statement_timeout_ms);
  return o;
}
feed::PoolOptions PoolFrom(const core::Config& c) {
  feed::PoolOptions p;
  p.size = c.db_pool_size;
  p.max_queued = static_cast<size_t>(c.db_queue);
  p.max_queued_per_client = static_cast<size_t>(c.db_queue_per_client);
  p.statement_timeout_ms = c.statement_timeout_ms;
  return p;
}
}  // namespace

App::App(uv_loop_t* loop, const core::Config& cfg)
    : loop_(loop), cfg_(cfg),
      threads_(cfg.threads > 0 ? cfg.threads : UsableCores()),
      verifier_(VerifierFrom(cfg)),
      feed_(loop, FeedFrom(cfg), &fanout_, &metrics_),
      outbox_(loop, OutboxFrom(cfg), &metrics_),
      pool_(loop, cfg.database_url, PoolFrom(cfg)),
      presence_(loop, realtime::PresenceOptions{cfg.presence_heartbeat_ms, cfg.presence_expiry_ms, cfg.typing_ttl_ms,
                                                   cfg.presence_leave_grace_ms},
                &fanout_, &pool_, &metrics_),
      publisher_(loop, cfg.database_url, feed::OptionsWithStatementTimeout(cfg.database_url, cfg.statement_timeout_ms),
                 &metrics_, cfg.coalesce_ms) {
  if (int rc = mailbox_.Open(loop); rc != 0) throw std::runtime_error(std::string("uv_async_init: ") + uv_err_name(rc));
  std::string error;
  if (!LoadStatic(&error)) throw std::runtime_error(error);
  if (!cfg_.tls_cert_file.empty()) {
    shared_.tls = http::TlsContext::Load(cfg_.tls_cert_file, cfg_.tls_key_file, &error);
    if (!shared_.tls) throw std::runtime_error(error);
  }
  // The shared services run on loop 0; the other loops call them through its mailbox.
  pool_.SetHome(&mailbox_);
  pool_.SetMetrics(&metrics_);
  presence_.SetHome(&mailbox_);
  publisher_.SetHome(&mailbox_);
  shared_.verifier = &verifier_;
  shared_.pool = &pool_;
  shared_.presence = &presence_;
  shared_.publisher = &publisher_;
  shared_.static_files = &static_files_;
  shared_.limits = std::make_shared<http::SharedLimits>();
  shared_.all_metrics.push_back(&metrics_);
  for (int i = 1; i < threads_; i++) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->index = i;
    shared_.all_metrics.push_back(&workers_.back()->metrics);
  }
  front_ = std::make_unique<Front>(loop, 0, cfg_, &shared_, &metrics_);
  shared_.home = &mailbox_;
  shared_.stats_owner = front_->catalog();
  fanout_.Add(front_->hub(), front_->view(), nullptr);
  if (uv_timer_init(loop_, stats_fold_timer_.get()) == 0) stats_fold_timer_.MarkInitialised();
  stats_fold_timer_->data = this;
}

App::~App() {
  // The other loops end once Shutdown() reached them (their connections drain first).
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

// A worker loop: its Front lives and dies on this thread; the App's Shutdown ends it.
void App::RunWorker(Worker* w, int port) {
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    w->listening.set_value(rc);
    return;
  }
  int rc = w->mailbox.Open(&loop);
  if (rc == 0) {
    core::Config cfg = cfg_;
    cfg.listen_port = port;
    w->front = std::make_unique<Front>(&loop, w->index, cfg, &shared_, &w->metrics);
    rc = w->front->Listen(http::Server::Share::kJoin);
  }
  w->listening.set_value(rc);
  if (rc == 0) {
    w->front->Start();
  } else {
    if (w->front) w->front->Close();
    w->mailbox.Close();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  w->front.reset();
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks
  if (uv_loop_close(&loop) != 0) core::LogError("a loop ended with handles open", {{"loop", w->index}});
}

bool App::ReloadTls() {
  if (cfg_.tls_cert_file.empty()) return true;
  std::string error;
  std::shared_ptr<http::TlsContext> tls = http::TlsContext::Load(cfg_.tls_cert_file, cfg_.tls_key_file, &error);
  if (!tls) {
    core::LogError("certificate reload failed; the previous certificate stays in use", {{"error", error}});
    return false;
  }
  front_->SetTls(tls);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->mailbox.Post([worker, tls] {
      if (worker->front) worker->front->SetTls(tls);
    });
  }
  core::LogInfo("certificate reloaded",
                {{"cert", cfg_.tls_cert_file}, {"connections", Total(&core::Metrics::http_connections)}});
  return true;
}

int64_t App::Total(core::Stat<int64_t> core::Metrics::*field) const {
  int64_t sum = 0;
  for (const core::Metrics* m : shared_.all_metrics) sum += (m->*field).get();
  return sum;
}

bool App::LoadStatic(std::string* error) {
  if (cfg_.web_root.empty()) return true;
  if (!static_files_.Load(cfg_.web_root, cfg_.web_max_bytes, error)) return false;
  core::LogInfo("static files loaded", {{"root", cfg_.web_root}, {"files", static_files_.Files()},
                                        {"bytes", static_files_.Bytes()}});
  return true;
}

int App::Start() {
  int rc = front_->Listen(threads_ > 1 ? http::Server::Share::kFirst : http::Server::Share::kNo);
  if (rc != 0) return rc;
  // The other loops listen on the port loop 0 got; all must before the feed starts (the fan-out
  // reaches every loop from its first batch).
  for (auto& w : workers_) {
    std::future<int> listening = w->listening.get_future();
    Worker* worker = w.get();
    int port = front_->Port();
    w->thread = std::thread([this, worker, port] { RunWorker(worker, port); });
    rc = listening.get();
    if (rc != 0) return rc;
    fanout_.Add(worker->front->hub(), worker->front->view(), &worker->mailbox);
  }
  // Ephemeral events and presence messages: rows of the outbox only (never a NOTIFY payload).
  outbox_.on_row = [this](const realtime::OutboxRow& row) {
    if (row.kind == realtime::OutboxRow::Kind::Presence) return presence_.OnMessage(row.payload);
    feed::EphemeralPtr ev = feed::EphemeralFromOutbox(row.channel, row.type, row.payload);
    if (!ev) {
      metrics_.outbox_rows_invalid++;
      return;
    }
    metrics_.ephemeral_received++;
    presence_.OnEphemeral(*ev);
    fanout_.Ephemeral(ev);
  };
  outbox_.on_ready = [this] { presence_.OnListening(); };
  // The feed's connection is the instance's one listener: it passes the ephemeral doorbell on.
  feed_.on_ephemeral_doorbell = [this](int be_pid) { outbox_.OnDoorbell(be_pid); };
  feed_.on_listening = [this] { outbox_.OnListening(); };
  feed_.on_listener_lost = [this] { outbox_.OnListenerLost(); };
  // This instance's own publications: handed out from the publish answer, and the doorbells of
  // the publisher's commits need no read here (other instances read those rows).
  publisher_.on_rows = [this](const std::vector<realtime::OutboxRow>& rows) { outbox_.HandOwn(rows); };
  publisher_.on_writer = [this](int pid) { outbox_.SetOwnWriter(pid); };
  publisher_.on_lost = [this] { outbox_.LostOwn(); };
  feed_.Start();
  outbox_.Start();
  presence_.Start();
  pool_.Start();
  publisher_.Start();
  front_->Start();
  if (cfg_.stats_fold_ms > 0 && stats_fold_timer_.initialised()) {
    auto every = static_cast<uint64_t>(cfg_.stats_fold_ms);
    int timer_rc = uv_timer_start(stats_fold_timer_.get(), [](uv_timer_t* t) {
      core::Guard("stats fold tick", [&] { static_cast<App*>(t->data)->FoldStats(); });
    }, every, every);
    if (timer_rc != 0) core::LogWarn("stats fold timer not started", {{"error", uv_err_name(timer_rc)}});
  }
  return 0;
}

void App::FoldStats() {
  if (stats_fold_running_) return;
  stats_fold_running_ = true;
  pool_.Query("SELECT evstream._stats_fold()", {}, [this](feed::QueryResult& r) {
    stats_fold_running_ = false;
    // Another folder holding the summary, or the database away: the next tick tries again.
    core::Guard("stats fold result", [&] {
      if (!r.ok()) core::LogDebug("stats fold failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
    });
  });
}

bool App::ReloadKeys() {
  core::Config next = cfg_;
  std::string error;
  if (!core::LoadKeyFiles(&next, &error) || !verifier_.Reload(VerifierFrom(next), &error)) {
    core::LogError("key reload failed; the previous keys stay in use", {{"error", error}});
    return false;
  }
  cfg_.jwt_secret = next.jwt_secret;
  cfg_.jwt_public_key_pem = next.jwt_public_key_pem;
  cfg_.jwt_jwks_json = next.jwt_jwks_json;
  core::LogInfo("keys reloaded", {{"keys", verifier_.KeyCount()}, {"algorithms", verifier_.Algorithms()},
                                  {"streams", Total(&core::Metrics::sse_clients)}});
  return true;
}

// Every loop stops accepting and closes its connections (streams after what is queued); the
// other loops end when theirs are closed, and ~App joins them.
void App::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (stats_fold_timer_.initialised()) uv_timer_stop(stats_fold_timer_.get());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->mailbox.Post([worker] {
      if (worker->front) worker->front->Close();
      worker->mailbox.Close();
    });
  }
  front_->Close();
  presence_.Close();
  publisher_.Close();
  outbox_.Close();
  feed_.Close();
  pool_.Close();
  mailbox_.Close();
}

}  // namespace evstream::api
