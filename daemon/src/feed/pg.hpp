// libpq without blocking the loop: one non-blocking connection driven by a uv_poll_t on
// PQsocket, an explicit connection state, reconnect with backoff, one query in flight.
#pragma once
#include <libpq-fe.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/uv_handle.hpp"

namespace evstream::feed {

struct PgFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgFinish>;
using PgResultPtr = std::unique_ptr<PGresult, PgClear>;

// A row that does not have the shape the statement promised (missing column, text that is not
// of the column's type). Thrown by the typed reads below and caught by the exception boundary of
// the callback that reads it: that one request fails (or the feed reconnects).
struct BadRow : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct QueryResult {
  PgResultPtr res;        // set on success (PGRES_TUPLES_OK / PGRES_COMMAND_OK)
  std::string error;      // primary message on failure
  std::string sqlstate;   // SQLSTATE on a server error; empty if the connection failed
  std::string detail, hint;
  bool overloaded = false;  // refused by the pool (queue full): 503 with Retry-After
  bool ok() const { return res != nullptr && error.empty(); }
  int rows() const { return res ? PQntuples(res.get()) : 0; }
  int columns() const { return res ? PQnfields(res.get()) : 0; }
  // The raw text; "" for NULL and for a row or column the result does not have.
  const char* value(int row, int col) const;
  bool null(int row, int col) const;
  // Typed reads of the text format: throw BadRow when the cell is missing, NULL (unless the
  // type allows it) or not of the type.
  std::string Text(int row, int col) const;
  std::optional<std::string> TextOrNull(int row, int col) const;
  int64_t Int64(int row, int col) const;
  uint64_t Uint64(int row, int col) const;
  int32_t Int32(int row, int col) const;
  double Double(int row, int col) const;
  bool Bool(int row, int col) const;

 private:
  const char* Cell(int row, int col) const;  // checked: throws BadRow when missing or NULL
};

using Params = std::vector<std::optional<std::string>>;

class PgConnection {
 public:
  enum class State { Disconnected, Connecting, Ready, Busy, Closed };
  using Callback = std::function<void(QueryResult&)>;

  PgConnection(uv_loop_t* loop, std::string conninfo, std::string name);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // libpq `options` for every (re)connect, e.g. "-c statement_timeout=30000".
  void SetOptions(std::string options) { options_ = std::move(options); }
  void Start();  // connect now (and reconnect with backoff whenever the connection drops)
  void Close();  // for good: no more reconnects; a query in flight fails
  State state() const { return state_; }
  bool Ready() const { return state_ == State::Ready; }
  int BackendPid() const;
  // Sends one statement; false if not Ready. The callback runs exactly once. The first
  // kMaxStatements distinct statements of a connection are prepared on their first Send (one
  // more round trip then) and run prepared afterwards: parsed and planned once per connection,
  // not per call (statements are the daemon's constants; a new connection prepares again).
  // One that fails with a changed result type (0A000) or is gone from the server (26000) is
  // prepared again by the next Send, under a new name counted against the same bound.
  bool Send(const std::string& sql, const Params& params, Callback cb);
  static constexpr size_t kMaxStatements = 32;
  // Drops the connection (a query in flight fails) and reconnects with backoff: how an owner
  // recovers after an exception in its own callback.
  void Reset(const std::string& why) { Lost(why); }

  std::function<void()> on_connected;
  std::function<void(const std::string& why)> on_disconnected;
  // be_pid: the process id of the backend that sent the NOTIFY (set by the server, not by the
  // sender's SQL: it cannot be forged).
  std::function<void(const std::string& channel, const std::string& payload, int be_pid)> on_notify;

 private:
  void Connect();
  void Watch(int events);
  void OnPoll(int status, int events);
  void ContinueConnect();
  void ReadInput();
  bool DrainNotifies();
  void Lost(const std::string& why);
  void ScheduleReconnect();
  void Fail(Callback cb, const std::string& why);
  bool Sent(int ok, Callback cb);  // after a PQsend*: flush and wait for the result
  bool SendParams(const char* name, const std::string& sql, const Params& params, Callback cb);
  bool ExecuteAfterPrepare();  // the prepare in flight succeeded: run the statement, still Busy

  uv_loop_t* loop_;
  std::string conninfo_, name_, options_;
  State state_ = State::Disconnected;
  PgConnPtr conn_;
  core::UvHandle<uv_poll_t> poll_;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  core::UvHandle<uv_timer_t> retry_timer_;
  uint64_t backoff_ms_ = 0;
  Callback in_flight_;
  QueryResult pending_;
  // Send's prepared statements on this connection: SQL text -> statement name.
  std::unordered_map<std::string, std::string> statements_;
  size_t statement_seq_ = 0;  // names handed out on this connection (never reused on it)
  // While Send's prepare is in flight: what to run once it succeeds.
  struct PendingExecute {
    std::string sql, name;
    Params params;
  };
  std::optional<PendingExecute> after_prepare_;
  const std::string* executing_ = nullptr;  // the prepared statement's SQL while it runs
};

// A PostgreSQL text[] literal, {"a","b"}, with quotes and backslashes escaped: how the daemon
// passes channel lists as one query parameter.
std::string TextArray(const std::vector<std::string>& items);

}  // namespace evstream::feed
