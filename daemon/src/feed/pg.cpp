#include "feed/pg.hpp"

#include <algorithm>

#include "core/guard.hpp"
#include "core/input.hpp"
#include "core/log.hpp"

namespace evstream::feed {
namespace {
constexpr uint64_t kMinBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 5000;

std::string ConnError(PGconn* c) {
  std::string e = c ? PQerrorMessage(c) : "out of memory";
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}
}  // namespace

const char* QueryResult::value(int row, int col) const {
  if (!res || row < 0 || row >= PQntuples(res.get()) || col < 0 || col >= PQnfields(res.get())) return "";
  return PQgetvalue(res.get(), row, col);
}

bool QueryResult::null(int row, int col) const {
  if (!res || row < 0 || row >= PQntuples(res.get()) || col < 0 || col >= PQnfields(res.get())) return true;
  return PQgetisnull(res.get(), row, col) != 0;
}

const char* QueryResult::Cell(int row, int col) const {
  if (!res || row < 0 || row >= PQntuples(res.get()) || col < 0 || col >= PQnfields(res.get()))
    throw BadRow("row " + std::to_string(row) + " has no column " + std::to_string(col));
  if (PQgetisnull(res.get(), row, col)) throw BadRow("column " + std::to_string(col) + " is NULL");
  return PQgetvalue(res.get(), row, col);
}

std::string QueryResult::Text(int row, int col) const { return Cell(row, col); }

std::optional<std::string> QueryResult::TextOrNull(int row, int col) const {
  if (res && row >= 0 && row < PQntuples(res.get()) && col >= 0 && col < PQnfields(res.get()) &&
      PQgetisnull(res.get(), row, col))
    return std::nullopt;
  return std::string(Cell(row, col));
}

int64_t QueryResult::Int64(int row, int col) const {
  int64_t v;
  if (!core::ParseInt64(Cell(row, col), &v)) throw BadRow("column " + std::to_string(col) + " is not a bigint");
  return v;
}

uint64_t QueryResult::Uint64(int row, int col) const {
  uint64_t v;
  if (!core::ParseUint64(Cell(row, col), &v)) throw BadRow("column " + std::to_string(col) + " is not an xid8");
  return v;
}

int32_t QueryResult::Int32(int row, int col) const {
  int64_t v = Int64(row, col);
  if (v < INT32_MIN || v > INT32_MAX) throw BadRow("column " + std::to_string(col) + " is not an integer");
  return static_cast<int32_t>(v);
}

double QueryResult::Double(int row, int col) const {
  double v;
  if (!core::ParseDouble(Cell(row, col), &v)) throw BadRow("column " + std::to_string(col) + " is not a number");
  return v;
}

bool QueryResult::Bool(int row, int col) const {
  std::string_view v = Cell(row, col);
  if (v == "t") return true;
  if (v == "f") return false;
  throw BadRow("column " + std::to_string(col) + " is not a boolean");
}

PgConnection::PgConnection(uv_loop_t* loop, std::string conninfo, std::string name)
    : loop_(loop), conninfo_(std::move(conninfo)), name_(std::move(name)) {
  int rc = uv_timer_init(loop_, retry_timer_.get());
  if (rc == 0) retry_timer_.MarkInitialised();
  retry_timer_->data = this;
}

PgConnection::~PgConnection() { Close(); }

int PgConnection::BackendPid() const { return conn_ ? PQbackendPID(conn_.get()) : 0; }

void PgConnection::Start() {
  if (state_ == State::Closed) return;
  Connect();
}

void PgConnection::Close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  if (retry_timer_.initialised()) uv_timer_stop(retry_timer_.get());
  poll_.Reset();  // stop watching before the socket goes away
  poll_fd_ = -1;
  conn_.reset();
  statements_.clear();
  statement_seq_ = 0;
  after_prepare_.reset();
  executing_ = nullptr;
  if (in_flight_) Fail(std::move(in_flight_), "shutting down");
  on_connected = nullptr;
  on_disconnected = nullptr;
  on_notify = nullptr;
}

// Starts a non-blocking connect; PQconnectPoll drives it from OnPoll.
void PgConnection::Connect() {
  poll_.Reset();
  poll_fd_ = -1;
  // conninfo may be a URL or key=value string (expand_dbname); PGAPPNAME still overrides.
  // options (statement_timeout) come after dbname, so they override the conninfo's own
  // options, which OptionsWithStatementTimeout has already folded in.
  const char* keys[] = {"dbname", "fallback_application_name", options_.empty() ? nullptr : "options", nullptr};
  const char* values[] = {conninfo_.c_str(), "evstreamd", options_.c_str(), nullptr};
  conn_.reset(PQconnectStartParams(keys, values, 1));
  if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
    std::string why = ConnError(conn_.get());
    conn_.reset();
    core::LogWarn("database connect failed", {{"conn", name_}, {"error", why}});
    ScheduleReconnect();
    return;
  }
  PQsetnonblocking(conn_.get(), 1);
  // Server notices (e.g. "terminating connection due to administrator command") as JSON logs.
  PQsetNoticeProcessor(conn_.get(), [](void* arg, const char* message) {
    core::Guard("database notice", [&] {  // called from inside libpq (C): nothing may escape
      std::string m = message ? message : "";
      while (!m.empty() && m.back() == '\n') m.pop_back();
      core::LogWarn("database notice", {{"conn", *static_cast<std::string*>(arg)}, {"notice", m}});
    });
  }, &name_);
  state_ = State::Connecting;
  Watch(UV_WRITABLE);
}

// (Re)points the poll handle at PQsocket with the given events; the socket can change while
// connecting (several hosts) and always changes on reconnect.
void PgConnection::Watch(int events) {
  int fd = PQsocket(conn_.get());
  if (fd < 0) {
    Lost("no socket");
    return;
  }
  if (fd != poll_fd_ || !poll_.initialised()) {
    poll_.Renew();
    int rc = uv_poll_init_socket(loop_, poll_.get(), fd);
    if (rc != 0) {
      core::LogError("uv_poll_init_socket failed", {{"conn", name_}, {"error", uv_err_name(rc)}});
      Lost("poll init failed");
      return;
    }
    poll_.MarkInitialised();
    poll_->data = this;
    poll_fd_ = fd;
    poll_events_ = 0;
  }
  if (events == poll_events_) return;
  poll_events_ = events;
  int rc = uv_poll_start(poll_.get(), events, [](uv_poll_t* h, int status, int ev) {
    auto* self = static_cast<PgConnection*>(h->data);
    core::Guard("database poll", [&] { self->OnPoll(status, ev); }, [&] { self->Lost("internal error"); });
  });
  if (rc != 0) Lost(std::string("uv_poll_start: ") + uv_err_name(rc));
}

void PgConnection::OnPoll(int status, int events) {
  if (state_ == State::Closed || state_ == State::Disconnected) return;
  if (status < 0) {  // e.g. UV_EBADF once libpq has closed a dead socket
    Lost(std::string("poll error: ") + uv_err_name(status));
    return;
  }
  if (state_ == State::Connecting) {
    ContinueConnect();
    return;
  }
  if (events & UV_WRITABLE) {
    int f = PQflush(conn_.get());
    if (f < 0) {
      Lost(ConnError(conn_.get()));
      return;
    }
    if (f == 0) Watch(UV_READABLE);
  }
  if (events & UV_READABLE) ReadInput();
}

void PgConnection::ContinueConnect() {
  switch (PQconnectPoll(conn_.get())) {
    case PGRES_POLLING_OK:
      state_ = State::Ready;
      backoff_ms_ = 0;
      Watch(UV_READABLE);
      core::LogInfo("database connected", {{"conn", name_}, {"backend_pid", BackendPid()}});
      if (on_connected) core::Guard("database connected", [&] { on_connected(); });
      return;
    case PGRES_POLLING_READING:
      Watch(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      Watch(UV_WRITABLE);
      return;
    default:
      Lost(ConnError(conn_.get()));
  }
}

// Input arrived: notifications, or (while Busy) the result of the query in flight.
void PgConnection::ReadInput() {
  if (!PQconsumeInput(conn_.get()) || PQstatus(conn_.get()) == CONNECTION_BAD) {
    Lost(ConnError(conn_.get()));
    return;
  }
  if (!DrainNotifies()) return;
  if (PQstatus(conn_.get()) == CONNECTION_BAD) {
    Lost(ConnError(conn_.get()));
    return;
  }
  if (state_ != State::Busy) return;
  while (!PQisBusy(conn_.get())) {
    PGresult* r = PQgetResult(conn_.get());
    if (!r) {
      if (after_prepare_ && ExecuteAfterPrepare()) {
        DrainNotifies();  // those that came with the prepare's answer (Busy: no handler sends)
        return;
      }
      // A prepared statement whose result type changed under it (its function or table was
      // redefined: 0A000) fails for good, and one the server no longer has (26000) too: forget
      // it, the next Send prepares it again under a new name.
      if (executing_ && (pending_.sqlstate == "0A000" || pending_.sqlstate == "26000"))
        statements_.erase(statements_.find(*executing_));
      executing_ = nullptr;
      // Query complete. Notifications parsed together with the result are delivered first.
      state_ = State::Ready;
      if (!DrainNotifies()) return;
      Callback cb = std::move(in_flight_);
      in_flight_ = nullptr;
      QueryResult result = std::move(pending_);
      pending_ = QueryResult{};
      if (!result.res && result.error.empty()) result.error = "no result";
      // The owner's callback guards itself (and knows what to close); this is the last net.
      if (cb) core::Guard("database result", [&] { cb(result); });
      return;
    }
    PgResultPtr res(r);
    auto st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      if (pending_.error.empty()) pending_.res = std::move(res);
    } else if (pending_.error.empty()) {
      const char* msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
      const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      pending_.error = msg ? msg : PQresultErrorMessage(r);
      pending_.sqlstate = code ? code : "";
      if (const char* d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) pending_.detail = d;
      if (const char* h = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT)) pending_.hint = h;
      pending_.res.reset();
    }
  }
  if (!DrainNotifies()) return;
  if (PQstatus(conn_.get()) == CONNECTION_BAD) Lost(ConnError(conn_.get()));
}

// Hands every notification libpq has parsed to on_notify; false if the connection went away.
bool PgConnection::DrainNotifies() {
  while (PGnotify* n = PQnotifies(conn_.get())) {
    std::string channel = n->relname;
    std::string payload = n->extra ? n->extra : "";
    int be_pid = n->be_pid;
    PQfreemem(n);
    if (on_notify) core::Guard("database notification", [&] { on_notify(channel, payload, be_pid); });
    if (state_ == State::Closed || !conn_) return false;
  }
  return true;
}

bool PgConnection::Send(const std::string& sql, const Params& params, Callback cb) {
  if (state_ != State::Ready) return false;
  if (auto it = statements_.find(sql); it != statements_.end()) {
    executing_ = &it->first;
    return SendParams(it->second.c_str(), sql, params, std::move(cb));
  }
  // Bounded by the names handed out, forgotten ones included (they stay on the server).
  if (statement_seq_ >= kMaxStatements) return SendParams(nullptr, sql, params, std::move(cb));
  std::string name = "evstream_s" + std::to_string(++statement_seq_);
  after_prepare_ = PendingExecute{sql, name, params};
  return Sent(PQsendPrepare(conn_.get(), name.c_str(), sql.c_str(), 0, nullptr), std::move(cb));
}

// name: a prepared statement, or nullptr for the unnamed one (parsed and planned with `sql`).
bool PgConnection::SendParams(const char* name, const std::string& sql, const Params& params, Callback cb) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  int n = static_cast<int>(values.size());
  int ok = name ? PQsendQueryPrepared(conn_.get(), name, n, values.data(), nullptr, nullptr, 0)
                : PQsendQueryParams(conn_.get(), sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
  return Sent(ok, std::move(cb));
}

// The connection stays Busy and the caller's callback waits for the statement's own result; a
// failed prepare (an error of the statement) is that result instead, and nothing is kept.
bool PgConnection::ExecuteAfterPrepare() {
  PendingExecute next = std::move(*after_prepare_);
  after_prepare_.reset();
  if (!pending_.error.empty()) {
    statement_seq_--;  // nothing was kept on the server: the name is free again
    return false;
  }
  auto [it, added] = statements_.emplace(std::move(next.sql), std::move(next.name));
  executing_ = &it->first;
  Callback cb = std::move(in_flight_);
  in_flight_ = nullptr;
  SendParams(it->second.c_str(), it->first, next.params, std::move(cb));
  return true;
}

bool PgConnection::Sent(int ok, Callback cb) {
  if (!ok) {
    std::string why = ConnError(conn_.get());
    Fail(std::move(cb), why);
    Lost(why);
    return true;
  }
  state_ = State::Busy;
  in_flight_ = std::move(cb);
  pending_ = QueryResult{};
  int f = PQflush(conn_.get());
  if (f < 0 || PQstatus(conn_.get()) == CONNECTION_BAD || PQsocket(conn_.get()) < 0) {
    Lost(ConnError(conn_.get()));
    return true;
  }
  Watch(f == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
  return true;
}

void PgConnection::Fail(Callback cb, const std::string& why) {
  if (!cb) return;
  QueryResult r;
  r.error = why.empty() ? "connection lost" : why;
  core::Guard("database result", [&] { cb(r); });
}

void PgConnection::Lost(const std::string& why) {
  if (state_ == State::Closed || state_ == State::Disconnected) return;
  bool was_connected = state_ == State::Ready || state_ == State::Busy;
  state_ = State::Disconnected;
  poll_.Reset();
  poll_fd_ = -1;
  conn_.reset();
  statements_.clear();  // prepared statements live and die with the backend
  statement_seq_ = 0;
  after_prepare_.reset();
  executing_ = nullptr;
  core::LogWarn("database connection lost", {{"conn", name_}, {"error", why}});
  Callback cb = std::move(in_flight_);
  in_flight_ = nullptr;
  ScheduleReconnect();
  Fail(std::move(cb), "database connection lost: " + why);
  if (was_connected && on_disconnected) core::Guard("database disconnected", [&] { on_disconnected(why); });
}

void PgConnection::ScheduleReconnect() {
  state_ = State::Disconnected;
  backoff_ms_ = backoff_ms_ == 0 ? kMinBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
  uv_timer_start(retry_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<PgConnection*>(t->data);
    core::Guard("database reconnect", [&] {
      if (self->state_ == State::Disconnected) self->Connect();
    }, [&] { self->Lost("internal error"); if (self->state_ == State::Disconnected) self->ScheduleReconnect(); });
  }, backoff_ms_, 0);
}

std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); i++) {
    if (i) out += ",";
    out += "\"";
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

}  // namespace evstream::feed
