#include "core/config.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "http/client_address.hpp"  // ProxyList: --trusted-proxy is checked when parsed

namespace evstream::core {
namespace {

struct Option {
  const char* flag;  // without "--"
  const char* env;
  const char* arg;   // nullptr: no argument
  const char* help;
  std::function<bool(Config*, const std::string&, std::string*)> apply;
};

// Strict: an optional '-' and digits only (strtol alone would also take " 2" and "+2").
bool ToInt(const std::string& s, long min, long max, long* out) {
  size_t digits = !s.empty() && s[0] == '-' ? 1 : 0;
  if (s.size() == digits) return false;
  for (size_t i = digits; i < s.size(); i++)
    if (s[i] < '0' || s[i] > '9') return false;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

template <typename T>
std::function<bool(Config*, const std::string&, std::string*)> IntField(T Config::*field, long min,
                                                                        long max) {
  return [=](Config* c, const std::string& v, std::string* err) {
    long n;
    if (!ToInt(v, min, max, &n)) {
      *err = "expected an integer between " + std::to_string(min) + " and " + std::to_string(max);
      return false;
    }
    c->*field = static_cast<T>(n);
    return true;
  };
}

std::function<bool(Config*, const std::string&, std::string*)> BoolField(bool Config::*field) {
  return [=](Config* c, const std::string& v, std::string* err) {
    if (v == "1" || v == "true" || v == "yes" || v == "on") {
      c->*field = true;
    } else if (v == "0" || v == "false" || v == "no" || v == "off") {
      c->*field = false;
    } else {
      *err = "expected true or false";
      return false;
    }
    return true;
  };
}

std::function<bool(Config*, const std::string&, std::string*)> StrField(std::string Config::*field) {
  return [=](Config* c, const std::string& v, std::string*) {
    c->*field = v;
    return true;
  };
}

const std::vector<Option>& Options() {
  static const std::vector<Option> options = {
      {"listen", "EVSTREAM_LISTEN", "HOST:PORT", "address to listen on (default 127.0.0.1:8080)",
       [](Config* c, const std::string& v, std::string* err) {
         if (!ParseListen(v, &c->listen_host, &c->listen_port)) {
           *err = "expected HOST:PORT";
           return false;
         }
         return true;
       }},
      {"database-url", "EVSTREAM_DATABASE_URL", "URL",
       "libpq connection string or URL (default: the PGHOST/PGPORT/PGDATABASE/... variables)",
       StrField(&Config::database_url)},
      {"jwt-secret", "EVSTREAM_JWT_SECRET", "SECRET",
       "shared secret (at least 32 bytes): accept HS256 tokens",
       StrField(&Config::jwt_secret)},
      {"jwt-secret-file", "EVSTREAM_JWT_SECRET_FILE", "FILE",
       "the HS256 secret read from FILE (one trailing newline ignored); re-read on SIGHUP",
       StrField(&Config::jwt_secret_file)},
      {"jwt-public-key", "EVSTREAM_JWT_PUBLIC_KEY", "FILE",
       "PEM public key: accept RS256 (RSA >= 2048 bits), ES256 (P-256) or EdDSA (Ed25519) tokens; "
       "re-read on SIGHUP",
       StrField(&Config::jwt_public_key_file)},
      {"jwt-jwks", "EVSTREAM_JWT_JWKS", "FILE",
       "JWK Set file: RS256, ES256 and EdDSA keys chosen by the token's kid; re-read on SIGHUP",
       StrField(&Config::jwt_jwks_file)},
      {"jwt-allow-no-exp", "EVSTREAM_JWT_ALLOW_NO_EXP", nullptr,
       "accept tokens without an exp claim (they never expire; default: refused)",
       BoolField(&Config::jwt_allow_no_exp)},
      {"jwt-max-age", "EVSTREAM_JWT_MAX_AGE", "SECONDS",
       "refuse tokens issued (iat) more than SECONDS ago, and end streams then; iat becomes required "
       "(default 0: off)",
       IntField(&Config::jwt_max_age_seconds, 0, 100L * 365 * 86400)},
      {"jwt-audience", "EVSTREAM_JWT_AUDIENCE", "AUD", "require this `aud` claim",
       StrField(&Config::jwt_audience)},
      {"jwt-issuer", "EVSTREAM_JWT_ISSUER", "ISS", "require this `iss` claim",
       StrField(&Config::jwt_issuer)},
      {"jwt-leeway", "EVSTREAM_JWT_LEEWAY", "SECONDS", "clock skew allowed for exp/nbf (default 0)",
       IntField(&Config::jwt_leeway_seconds, 0, 3600)},
      {"heartbeat", "EVSTREAM_HEARTBEAT", "SECONDS",
       "seconds between `event: heartbeat` frames (default 15)",
       IntField(&Config::heartbeat_seconds, 1, 3600)},
      {"retry-ms", "EVSTREAM_RETRY_MS", "MS", "`retry:` hint sent to clients on connect (default 2000)",
       IntField(&Config::retry_ms, 0, 600000)},
      {"max-queue-bytes", "EVSTREAM_MAX_QUEUE_BYTES", "BYTES",
       "per-client unsent bytes; past it a stream stops taking live frames and catches up from the log "
       "once drained (default 1048576)",
       IntField(&Config::max_queue_bytes, 1024, 1L << 30)},
      {"stall-timeout-ms", "EVSTREAM_STALL_TIMEOUT_MS", "MS",
       "a stream over --max-queue-bytes that does not drain for this long gets `event: overflow` and is "
       "disconnected; it resumes by Last-Event-ID (default 10000)",
       IntField(&Config::stall_timeout_ms, 10, 3600000)},
      {"max-body-bytes", "EVSTREAM_MAX_BODY_BYTES", "BYTES",
       "largest accepted request body; larger gets 413 (default 1048576)",
       IntField(&Config::max_body_bytes, 1, 1L << 30)},
      {"threads", "EVSTREAM_THREADS", "K",
       "event loops serving connections, each on its own thread (SO_REUSEPORT listeners); one feed "
       "reads the log for all of them (default 0: one per CPU core)",
       IntField(&Config::threads, 0, 256)},
      {"max-connections", "EVSTREAM_MAX_CONNECTIONS", "N",
       "open HTTP connections before new ones are refused (default 10000)",
       IntField(&Config::max_connections, 1, 1000000)},
      {"batch-size", "EVSTREAM_BATCH_SIZE", "N", "events per read from the log (default 1000)",
       IntField(&Config::batch_size, 1, 100000)},
      {"held-back-ms", "EVSTREAM_HELD_BACK_MS", "MS",
       "re-read period while committed events are held back by an older open transaction (default 25)",
       IntField(&Config::held_back_ms, 1, 10000)},
      {"poll-ms", "EVSTREAM_POLL_MS", "MS",
       "safety-net read of the log when no doorbell rang for this long; 0 = doorbells only (default 1000)",
       IntField(&Config::poll_ms, 0, 3600000)},
      {"db-pool", "EVSTREAM_DB_POOL", "N",
       "database connections for replays and the HTTP API (default 4)",
       IntField(&Config::db_pool_size, 1, 64)},
      {"db-queue", "EVSTREAM_DB_QUEUE", "N",
       "database jobs that may wait for a pool connection, all clients together; past it 503 with "
       "Retry-After (default 2000)",
       IntField(&Config::db_queue, 1, 1000000)},
      {"db-queue-per-client", "EVSTREAM_DB_QUEUE_PER_CLIENT", "N",
       "database jobs that may wait for one client (token sub, else address); clients take turns "
       "(default 200)",
       IntField(&Config::db_queue_per_client, 1, 1000000)},
      {"statement-timeout-ms", "EVSTREAM_STATEMENT_TIMEOUT_MS", "MS",
       "statement_timeout of every database connection of the daemon (pool and feed); 0 = none "
       "(default 30000)",
       IntField(&Config::statement_timeout_ms, 0, 86400000)},
      {"max-connections-per-address", "EVSTREAM_MAX_CONNECTIONS_PER_ADDRESS", "N",
       "open connections from one client IP address; past it 429 with Retry-After (default 256)",
       IntField(&Config::max_connections_per_address, 1, 1000000)},
      {"max-connections-per-sub", "EVSTREAM_MAX_CONNECTIONS_PER_SUB", "N",
       "open connections authenticated as one token `sub`; past it 429 with Retry-After (default 64)",
       IntField(&Config::max_connections_per_sub, 1, 1000000)},
      {"max-pending-bytes", "EVSTREAM_MAX_PENDING_BYTES", "BYTES",
       "bytes held in requests still being received, all connections together; a request that would "
       "pass it gets 503 with Retry-After (default 67108864)",
       IntField(&Config::max_pending_bytes, 1024, 1L << 40)},
      {"header-timeout-ms", "EVSTREAM_HEADER_TIMEOUT_MS", "MS",
       "a request's headers must arrive within this long of its first byte (or of the connection "
       "opening); else 408 and close (default 10000)",
       IntField(&Config::header_timeout_ms, 10, 3600000)},
      {"body-timeout-ms", "EVSTREAM_BODY_TIMEOUT_MS", "MS",
       "a request's body must arrive within this long of its headers; else 408 and close "
       "(default 30000)",
       IntField(&Config::body_timeout_ms, 10, 3600000)},
      {"idle-timeout-ms", "EVSTREAM_IDLE_TIMEOUT_MS", "MS",
       "a keep-alive connection with no new request for this long is closed (default 60000)",
       IntField(&Config::idle_timeout_ms, 10, 3600000)},
      {"stats-cache-ms", "EVSTREAM_STATS_CACHE_MS", "MS",
       "GET /api/stats: an answer is reused for this long per channel set, and at most one query per "
       "channel set runs at a time (default 5000)",
       IntField(&Config::stats_cache_ms, 0, 3600000)},
      {"stats-fold-ms", "EVSTREAM_STATS_FOLD_MS", "MS",
       "fold the events appended since the last fold into the stats summary this often "
       "(evstream._stats_fold), so GET /api/stats reads a short tail even after a quiet period; "
       "0 turns it off (default 1000)",
       IntField(&Config::stats_fold_ms, 0, 3600000)},
      {"web-max-bytes", "EVSTREAM_WEB_MAX_BYTES", "BYTES",
       "static files are read into memory at startup (never from the event loop); the daemon refuses "
       "to start when --web-root holds more than this (default 67108864)",
       IntField(&Config::web_max_bytes, 0, 1L << 34)},
      {"coalesce-ms", "EVSTREAM_COALESCE_MS", "MS",
       "POST /api/publish: a token chunk waits up to this long to be merged with later chunks of its "
       "stream; 0 = only while a publish is in flight (default 5)",
       IntField(&Config::coalesce_ms, 0, 1000)},
      {"presence-heartbeat-ms", "EVSTREAM_PRESENCE_HEARTBEAT_MS", "MS",
       "period of this instance's presence heartbeat to the other instances (default 5000)",
       IntField(&Config::presence_heartbeat_ms, 100, 600000)},
      {"presence-expiry-ms", "EVSTREAM_PRESENCE_EXPIRY_MS", "MS",
       "the members of an instance not heard from this long leave (default 15000)",
       IntField(&Config::presence_expiry_ms, 200, 3600000)},
      {"presence-leave-grace-ms", "EVSTREAM_PRESENCE_LEAVE_GRACE_MS", "MS",
       "a user whose last stream closed leaves after this long unless one reopens (default 1000)",
       IntField(&Config::presence_leave_grace_ms, 0, 600000)},
      {"typing-ttl-ms", "EVSTREAM_TYPING_TTL_MS", "MS",
       "a typing indicator not refreshed this long gets isTyping: false (default 6000)",
       IntField(&Config::typing_ttl_ms, 100, 600000)},
      {"outbox-retention-ms", "EVSTREAM_OUTBOX_RETENTION_MS", "MS",
       "ephemeral outbox rows are deleted this long after this instance read past them (default 30000)",
       IntField(&Config::outbox_retention_ms, 100, 3600000)},
      {"web-root", "EVSTREAM_WEB_ROOT", "DIR",
       "serve static files from DIR (default: web/ in the current directory when it exists)",
       [](Config* c, const std::string& v, std::string*) {
         c->web_root = v;
         c->web_root_explicit = true;
         return true;
       }},
      {"cors-origin", "EVSTREAM_CORS_ORIGIN", "ORIGIN",
       "allow this browser origin (repeatable, or comma-separated) with credentials; `*` = any other "
       "origin, answered with `Access-Control-Allow-Origin: *` and never with credentials",
       [](Config* c, const std::string& v, std::string*) {
         std::stringstream ss(v);
         std::string item;
         while (std::getline(ss, item, ','))
           if (!item.empty()) c->cors_origins.push_back(item);
         return true;
       }},
      {"trusted-proxy", "EVSTREAM_TRUSTED_PROXY", "ADDR",
       "believe X-Forwarded-For / X-Real-IP from this peer only (address or CIDR; repeatable)",
       [](Config* c, const std::string& v, std::string* err) {
         std::stringstream ss(v);
         std::string item;
         http::ProxyList check;
         while (std::getline(ss, item, ',')) {
           if (item.empty()) continue;
           if (!check.Add(item, err)) return false;
           c->trusted_proxies.push_back(item);
         }
         return true;
       }},
      {"tls-cert", "EVSTREAM_TLS_CERT", "FILE",
       "PEM certificate (chain) for TLS: the listener then speaks only TLS, HTTP/2 (ALPN h2) or "
       "HTTP/1.1; re-read with --tls-key on SIGHUP (open streams stay)",
       StrField(&Config::tls_cert_file)},
      {"tls-key", "EVSTREAM_TLS_KEY", "FILE", "PEM private key of --tls-cert",
       StrField(&Config::tls_key_file)},
      {"h2-max-concurrent-streams", "EVSTREAM_H2_MAX_CONCURRENT_STREAMS", "N",
       "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one HTTP/2 connection may hold open "
       "(default 100)",
       IntField(&Config::h2_max_concurrent_streams, 1, 100000)},
      {"log-level", "EVSTREAM_LOG_LEVEL", "LEVEL", "debug, info, warn or error (default info)",
       [](Config* c, const std::string& v, std::string* err) {
         if (v != "debug" && v != "info" && v != "warn" && v != "error") {
           *err = "expected debug, info, warn or error";
           return false;
         }
         c->log_level = v;
         return true;
       }},
  };
  return options;
}

}  // namespace

bool ParseListen(const std::string& text, std::string* host, int* port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string h = text.substr(0, colon);
  long p;
  if (!ToInt(text.substr(colon + 1), 0, 65535, &p)) return false;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "127.0.0.1";
  *host = h;
  *port = static_cast<int>(p);
  return true;
}

ParseOutcome ParseConfig(int argc, const char* const* argv, Config* out, std::string* error,
                         GetEnvFn getenv_fn) {
  if (!getenv_fn) getenv_fn = [](const char* n) -> const char* { return std::getenv(n); };
  const auto& options = Options();
  // Environment first, then flags override (cors-origin from flags replaces the env list).
  Config cfg;
  for (const auto& o : options) {
    const char* v = getenv_fn(o.env);
    if (!v || !*v) continue;
    std::string why;
    if (!o.apply(&cfg, v, &why)) {
      *error = std::string(o.env) + ": " + why;
      return ParseOutcome::Error;
    }
  }
  bool cors_from_flags = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return ParseOutcome::Help;
    if (a == "--version" || a == "-V") return ParseOutcome::Version;
    if (a.rfind("--", 0) != 0) {
      *error = "unexpected argument: " + a;
      return ParseOutcome::Error;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Option* opt = nullptr;
    for (const auto& o : options)
      if (name == o.flag) opt = &o;
    if (!opt) {
      *error = "unknown flag: --" + name + " (see --help)";
      return ParseOutcome::Error;
    }
    if (!has_value && !opt->arg) {
      value = "true";  // a switch
    } else if (!has_value) {
      if (i + 1 >= argc) {
        *error = "--" + name + " needs a value";
        return ParseOutcome::Error;
      }
      value = argv[++i];
    }
    if (name == "cors-origin" && !cors_from_flags) {
      cfg.cors_origins.clear();
      cors_from_flags = true;
    }
    std::string why;
    if (!opt->apply(&cfg, value, &why)) {
      *error = "--" + name + ": " + why;
      return ParseOutcome::Error;
    }
  }
  *out = std::move(cfg);
  return ParseOutcome::Run;
}

namespace {
bool ReadSmallFile(const std::string& path, const char* flag, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot read ") + flag + " file " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  if (out->size() > (1u << 20)) {
    *error = std::string(flag) + " file " + path + " is larger than 1 MiB";
    return false;
  }
  return true;
}
}  // namespace

bool LoadKeyFiles(Config* cfg, std::string* error) {
  if (!cfg->jwt_secret_file.empty()) {
    std::string secret;
    if (!ReadSmallFile(cfg->jwt_secret_file, "--jwt-secret-file", &secret, error)) return false;
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    if (secret.empty()) {
      *error = "--jwt-secret-file " + cfg->jwt_secret_file + " is empty";
      return false;
    }
    cfg->jwt_secret = secret;
  }
  if (!cfg->jwt_public_key_file.empty() &&
      !ReadSmallFile(cfg->jwt_public_key_file, "--jwt-public-key", &cfg->jwt_public_key_pem, error))
    return false;
  if (!cfg->jwt_jwks_file.empty() && !ReadSmallFile(cfg->jwt_jwks_file, "--jwt-jwks", &cfg->jwt_jwks_json, error))
    return false;
  return true;
}

bool LoadFiles(Config* cfg, std::string* error) {
  if (cfg->tls_cert_file.empty() != cfg->tls_key_file.empty()) {
    *error = "--tls-cert and --tls-key: give both or neither";
    return false;
  }
  if (!cfg->jwt_secret.empty() && !cfg->jwt_secret_file.empty()) {
    *error = "--jwt-secret and --jwt-secret-file: give one of them";
    return false;
  }
  if (!LoadKeyFiles(cfg, error)) return false;
  struct stat st;
  if (cfg->web_root_explicit) {
    if (!cfg->web_root.empty() && (stat(cfg->web_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
      *error = "--web-root " + cfg->web_root + " is not a directory";
      return false;
    }
  } else if (stat("web", &st) == 0 && S_ISDIR(st.st_mode)) {
    cfg->web_root = "web";
  }
  return true;
}

std::string HelpText() {
  std::ostringstream o;
  o << "evstreamd " << EVSTREAMD_VERSION
    << " - streams the evstream event log to browsers as Server-Sent Events\n\n"
       "Usage: evstreamd [FLAGS]\n\n"
       "Each flag can also be set by the environment variable shown (the flag wins).\n\n";
  for (const auto& opt : Options()) {
    std::string left = std::string("  --") + opt.flag + (opt.arg ? std::string(" ") + opt.arg : "");
    o << left << "\n      " << opt.help << "  [" << opt.env << "]\n";
  }
  o << "  --help     show this text\n  --version  print the version\n\n"
       "Endpoints:\n"
       "  GET  /api/events/stream   SSE; token via Authorization: Bearer, cookie evstream_token, or\n"
       "                            ?access_token= (least safe: lands in logs); ?channel= (repeatable),\n"
       "                            X-Project-Id, ?topic=type:id|type:*, ?batch_ms=, Last-Event-ID\n"
       "  POST /api/events          append an event (JSON body, Idempotency-Key header)\n"
       "  GET  /api/events          history: ?channel=&after=&limit=\n"
       "  GET  /api/streams/{aggregate_type}/{aggregate_id}   one aggregate's history\n"
       "  GET  /healthz             200, or 503 while the database is unreachable\n"
       "  GET  /metrics             Prometheus text format\n"
       "  GET  /*                   static files from --web-root\n\n"
       "Claims rule: sub -> user:<sub>; projects[] -> project:<p>; channels[] -> names, a trailing *\n"
       "matches a prefix.\n";
  return o.str();
}

std::string VersionText() { return std::string("evstreamd ") + EVSTREAMD_VERSION + "\n"; }

}  // namespace evstream::core
