// evstreamd: configuration, the loop and signals. Everything else hangs off api::App.
#include <sys/resource.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "api/app.hpp"
#include "core/config.hpp"
#include "core/guard.hpp"
#include "core/log.hpp"

namespace {

using evstream::core::LogError;
using evstream::core::LogInfo;
using evstream::core::LogWarn;

// Many SSE clients need many descriptors: raise the soft limit to the hard one.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

struct Runtime {
  uv_loop_t* loop = nullptr;
  std::unique_ptr<evstream::api::App> app;
  uv_signal_t sigterm, sigint, sighup;
  bool stopping = false;
};

void HandleSignal(uv_signal_t* h, int signum);

void OnSignal(uv_signal_t* h, int signum) {
  evstream::core::Guard("signal", [&] { HandleSignal(h, signum); });
}

void HandleSignal(uv_signal_t* h, int signum) {
  auto* rt = static_cast<Runtime*>(h->data);
  if (signum == SIGHUP) {
    if (rt->stopping || !rt->app) return;
    LogInfo("SIGHUP received; reloading keys");
    rt->app->ReloadKeys();
    rt->app->ReloadTls();
    return;
  }
  if (rt->stopping) return;
  rt->stopping = true;
  LogInfo("shutting down", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
  rt->app->Shutdown();
  for (uv_signal_t* s : {&rt->sigterm, &rt->sigint, &rt->sighup})
    uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  evstream::core::Config cfg;
  std::string error;
  switch (evstream::core::ParseConfig(argc, argv, &cfg, &error)) {
    case evstream::core::ParseOutcome::Help:
      std::fputs(evstream::core::HelpText().c_str(), stdout);
      return 0;
    case evstream::core::ParseOutcome::Version:
      std::fputs(evstream::core::VersionText().c_str(), stdout);
      return 0;
    case evstream::core::ParseOutcome::Error:
      std::fprintf(stderr, "evstreamd: %s\n", error.c_str());
      return 2;
    case evstream::core::ParseOutcome::Run:
      break;
  }
  evstream::core::LogLevel level;
  if (evstream::core::ParseLogLevel(cfg.log_level, &level)) evstream::core::SetLogLevel(level);
  if (!evstream::core::LoadFiles(&cfg, &error)) {
    LogError(error);
    return 2;
  }
  if (cfg.jwt_secret.empty() && cfg.jwt_public_key_pem.empty() && cfg.jwt_jwks_json.empty()) {
    LogError("no --jwt-secret, --jwt-secret-file, --jwt-public-key or --jwt-jwks: every request would be refused");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();

  Runtime rt;
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    LogError("uv_loop_init failed", {{"error", uv_err_name(rc)}});
    return 1;
  }
  rt.loop = &loop;
  try {
    rt.app = std::make_unique<evstream::api::App>(&loop, cfg);
  } catch (const std::exception& e) {
    LogError(e.what());
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 2;
  }
  if (int rc = rt.app->Start(); rc != 0) {
    LogError("cannot listen", {{"address", cfg.listen_host + ":" + std::to_string(cfg.listen_port)},
                               {"error", uv_err_name(rc)}});
    rt.app->Shutdown();
    uv_run(&loop, UV_RUN_DEFAULT);
    rt.app.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  for (auto [sig, h] : {std::pair{SIGTERM, &rt.sigterm}, std::pair{SIGINT, &rt.sigint}, std::pair{SIGHUP, &rt.sighup}}) {
    uv_signal_init(&loop, h);
    h->data = &rt;
    uv_signal_start(h, OnSignal, sig);
  }
  LogInfo("listening", {{"address", cfg.listen_host}, {"port", rt.app->Port()},
                        {"tls", !cfg.tls_cert_file.empty()}, {"threads", rt.app->Threads()},
                        {"web_root", cfg.web_root}, {"version", EVSTREAMD_VERSION}});

  uv_run(&loop, UV_RUN_DEFAULT);
  rt.app.reset();                 // closes the handles it still owns
  uv_run(&loop, UV_RUN_DEFAULT);  // their close callbacks
  int rc = uv_loop_close(&loop);
  if (rc != 0) {
    uv_walk(&loop, [](uv_handle_t* h, void*) {
      LogError("handle still open at exit", {{"type", uv_handle_type_name(h->type)}});
    }, nullptr);
    LogError("uv_loop_close failed", {{"error", uv_err_name(rc)}});
    return 1;
  }
  LogInfo("stopped");
  return 0;
}
