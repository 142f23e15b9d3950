// evstreamd configuration: flags with matching environment variables (flag wins).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace evstream::core {

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string database_url;          // empty: libpq's PG* environment variables
  std::string jwt_secret;            // enables HS256 (at least 32 bytes)
  std::string jwt_secret_file;       // the same, read from a file (re-read on SIGHUP)
  std::string jwt_jwks_file;         // a JWK Set: RS256/ES256/EdDSA keys chosen by kid (re-read on SIGHUP)
  std::string jwt_jwks_json;         // loaded from the file by LoadKeyFiles()
  bool jwt_allow_no_exp = false;     // accept tokens without exp
  int jwt_max_age_seconds = 0;       // > 0: iat required and at most this old
  std::string jwt_public_key_file;   // enables RS256 (RSA key) or ES256 (P-256 key)
  std::string jwt_public_key_pem;    // loaded from the file by LoadFiles()
  std::string jwt_audience;
  std::string jwt_issuer;
  int jwt_leeway_seconds = 0;
  int heartbeat_seconds = 15;
  int retry_ms = 2000;
  std::size_t max_queue_bytes = 1 << 20;  // per SSE client before it catches up from the log
  int stall_timeout_ms = 10000;           // above the limit this long without draining: dropped
  std::size_t max_body_bytes = 1 << 20;   // POST bodies (413 above)
  int max_connections = 10000;
  int threads = 0;                        // event loops (0: one per core)
  int batch_size = 1000;                  // rows per read_after
  int held_back_ms = 25;                  // re-read period while events are held back
  int poll_ms = 1000;                     // safety-net read period (0: doorbells only)
  int db_pool_size = 4;                   // connections for replays and the HTTP API
  int db_queue = 2000;                    // pool jobs waiting (all clients) before 503
  int db_queue_per_client = 200;          // pool jobs waiting for one client before 503
  int statement_timeout_ms = 30000;       // every statement of the pool and the feed (0: none)
  int max_connections_per_address = 256;  // open connections from one client IP (429 above)
  int max_connections_per_sub = 64;       // open connections authenticated as one token sub
  std::size_t max_pending_bytes = 64u << 20;  // bytes held in requests not yet complete (503)
  int header_timeout_ms = 10000;          // to receive a request's headers
  int body_timeout_ms = 30000;            // to receive its body once the headers are in
  int idle_timeout_ms = 60000;            // a keep-alive connection waiting for its next request
  int stats_cache_ms = 5000;              // GET /api/stats answers reused this long per channel set
  int stats_fold_ms = 1000;               // fold new events into the stats summary this often (0: off)
  std::size_t web_max_bytes = 64u << 20;  // static files preloaded at startup, in total
  int max_batch_ms = 5000;
  int coalesce_ms = 5;                    // POST /api/publish: a first chunk waits this long for more
  int presence_heartbeat_ms = 5000;       // presence state sent to the other instances
  int presence_expiry_ms = 15000;         // an instance silent this long: its members leave
  int presence_leave_grace_ms = 1000;    // last stream closed: leave after this long (reloads)
  int typing_ttl_ms = 6000;               // typing not refreshed this long: isTyping false
  int outbox_retention_ms = 30000;        // outbox rows pruned this long after this instance passed them
  std::string web_root;                   // static files; empty: none
  bool web_root_explicit = false;
  std::vector<std::string> cors_origins;  // "*" allows any origin
  // Peers whose X-Forwarded-For / X-Real-IP are believed (addresses or CIDR blocks).
  std::vector<std::string> trusted_proxies;
  std::string log_level = "info";
  std::string tls_cert_file;               // PEM certificate chain: the listener speaks TLS (re-read on SIGHUP)
  std::string tls_key_file;                // its PEM private key
  int h2_max_concurrent_streams = 100;     // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
};

enum class ParseOutcome { Run, Help, Version, Error };

// Parses argv then the environment (flags win). On Error, *error explains.
// getenv is injectable for tests.
using GetEnvFn = const char* (*)(const char*);
ParseOutcome ParseConfig(int argc, const char* const* argv, Config* out, std::string* error,
                         GetEnvFn getenv_fn = nullptr);

// Reads the files named by the config (keys); picks web/ by default when it exists.
bool LoadFiles(Config* cfg, std::string* error);
// Reads only the key files (--jwt-secret-file, --jwt-public-key, --jwt-jwks): at start and on SIGHUP.
bool LoadKeyFiles(Config* cfg, std::string* error);

std::string HelpText();
std::string VersionText();

// "host:port", "[v6]:port" or ":port".
bool ParseListen(const std::string& text, std::string* host, int* port);

}  // namespace evstream::core
