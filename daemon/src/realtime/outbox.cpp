#include "realtime/outbox.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>

#include "core/guard.hpp"
#include "core/log.hpp"

namespace evstream::realtime {
namespace {
const char* const kReadSql =
    "SELECT id, kind, channel, type, entity, entity_id, payload, horizon::text, next_xid::text"
    " FROM evstream._ephemeral_read($1::bigint, $2::bigint[], $3::int)";
const char* const kTailSql =
    "SELECT last_id, missing::text, next_xid::text FROM evstream._ephemeral_tail()";
const char* const kPruneSql = "SELECT evstream._ephemeral_prune($1::bigint)";

// Strict decimal parsing of a column value: false unless the whole text is a number in range.
bool ParseI64(const char* s, int64_t* out) {
  if (s == nullptr || *s == '\0') return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}
bool ParseU64(const char* s, uint64_t* out) {
  if (s == nullptr || *s < '0' || *s > '9') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}
// A bigint[] literal "{1,2}" as ids; false on anything else.
bool ParseIdArray(const char* s, std::map<int64_t, uint64_t>* out) {
  std::string t = s ? s : "";
  if (t.size() < 2 || t.front() != '{' || t.back() != '}') return false;
  std::string inner = t.substr(1, t.size() - 2);
  size_t pos = 0;
  while (pos < inner.size()) {
    size_t comma = inner.find(',', pos);
    if (comma == std::string::npos) comma = inner.size();
    int64_t id = 0;
    if (!ParseI64(inner.substr(pos, comma - pos).c_str(), &id)) return false;
    (*out)[id] = 0;
    pos = comma + 1;
  }
  return true;
}
std::string Col(const feed::QueryResult& r, int row, int col) {
  return r.null(row, col) ? std::string() : std::string(r.value(row, col));
}
}  // namespace

Outbox::Outbox(uv_loop_t* loop, OutboxOptions opts, core::Metrics* metrics)
    : loop_(loop), opts_(std::move(opts)), metrics_(metrics), conn_(loop, opts_.conninfo, "outbox"),
      cursor_(opts_.max_gaps) {
  conn_.SetOptions(opts_.pg_options);
  if (uv_timer_init(loop_, recheck_timer_.get()) == 0) recheck_timer_.MarkInitialised();
  recheck_timer_->data = this;
  if (uv_timer_init(loop_, tick_timer_.get()) == 0) tick_timer_.MarkInitialised();
  tick_timer_->data = this;
  if (uv_timer_init(loop_, read_timer_.get()) == 0) read_timer_.MarkInitialised();
  read_timer_->data = this;
  conn_.on_connected = [this] { core::Guard("outbox connected", [&] { OnConnected(); }, [&] { Recover(); }); };
  conn_.on_disconnected = [this](const std::string&) {
    busy_ = false;
    anchored_ = false;
    cursor_.Unanchor();
    uv_timer_stop(recheck_timer_.get());
    uv_timer_stop(read_timer_.get());
  };
}

void Outbox::Start() {
  conn_.Start();
  if (tick_timer_.initialised())
    uv_timer_start(tick_timer_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Outbox*>(t->data);
      core::Guard("outbox tick", [&] { self->Tick(); }, [&] { self->Recover(); });
    }, 1000, 1000);
}

void Outbox::Close() {
  closed_ = true;
  uv_timer_stop(recheck_timer_.get());
  uv_timer_stop(tick_timer_.get());
  uv_timer_stop(read_timer_.get());
  conn_.Close();
}

void Outbox::OnConnected() {
  anchored_ = false;
  cursor_.Unanchor();
  doorbell_pending_ = false;
  if (listening_) Anchor();
}

// The listener (re)listens: anchor if not anchored yet (LISTEN before anchoring: whatever commits
// after the anchor rings a doorbell we hear), else read on from the cursor (doorbells may have
// been missed while it was away).
void Outbox::OnListening() {
  core::Guard("outbox listening", [&] { Listening(); }, [&] { Recover(); });
}

void Outbox::Listening() {
  listening_ = true;
  if (closed_) return;
  if (anchored_) {
    ReadLater();
    return;
  }
  if (!busy_ && conn_.Ready()) Anchor();
}

void Outbox::Anchor() {
  busy_ = true;
  bool sent = conn_.Send(kTailSql, {}, [this](feed::QueryResult& r) {
    core::Guard("outbox anchor", [&] {
      busy_ = false;
      int64_t last = 0;
      uint64_t next_xid = 0;
      std::map<int64_t, uint64_t> missing;
      if (!r.ok() || r.rows() != 1 || !ParseI64(r.value(0, 0), &last) || !ParseIdArray(r.value(0, 1), &missing) ||
          !ParseU64(r.value(0, 2), &next_xid)) {
        core::LogWarn("reading the end of the ephemeral outbox failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
        return;  // a connection error reconnects; anything else is retried by the next tick
      }
      cursor_.Anchor(last, missing, next_xid);
      anchored_ = true;
      marks_.clear();
      pruned_upto_ = 0;
      core::LogInfo("outbox positioned", {{"id", last}, {"gaps", cursor_.gap_count()}});
      if (on_ready) core::Guard("outbox ready", [&] { on_ready(); });
      Read();
    }, [&] { Recover(); });
  });
  if (!sent) busy_ = false;
}

void Outbox::Read() {
  if (closed_ || !anchored_) return;
  busy_ = true;
  doorbell_pending_ = false;
  uv_timer_stop(recheck_timer_.get());
  uv_timer_stop(read_timer_.get());
  last_read_ms_ = uv_now(loop_);
  metrics_->outbox_reads++;
  read_after_ = cursor_.after();
  cursor_.BeginRead();
  bool sent = conn_.Send(kReadSql, {std::to_string(read_after_), cursor_.GapsLiteral(),
                                    std::to_string(opts_.batch_size)},
                         [this](feed::QueryResult& r) {
                           core::Guard("outbox rows", [&] { OnRows(r); }, [&] { Recover(); });
                         });
  if (!sent) busy_ = false;
}

// The first row is the horizon (id NULL); then the rows in id order.
void Outbox::OnRows(feed::QueryResult& r) {
  busy_ = false;
  if (!r.ok()) {
    if (!r.sqlstate.empty()) core::LogError("outbox read failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
    return;  // connection errors: the reconnect re-anchors
  }
  int n = r.rows();
  uint64_t horizon = 0, next_xid = 0;
  if (n < 1 || !r.null(0, 0) || !ParseU64(r.value(0, 7), &horizon) || !ParseU64(r.value(0, 8), &next_xid)) {
    core::LogError("outbox read returned no horizon row");
    return;
  }
  // Own rows handed out meanwhile may have moved the cursor on: count from where the read began.
  int64_t read_after = read_after_, last_id = cursor_.after();
  int fresh = 0;  // rows above read_after (the part of the read cut by its limit)
  for (int i = 1; i < n; i++) {
    OutboxRow row;
    std::string kind = Col(r, i, 1);
    if (!ParseI64(r.value(i, 0), &row.id) || (kind != "event" && kind != "presence") || r.null(i, 6)) {
      metrics_->outbox_rows_invalid++;
      continue;
    }
    if (row.id > read_after) fresh++;
    last_id = std::max(last_id, row.id);
    if (!cursor_.Accept(row.id, next_xid)) continue;
    row.kind = kind == "event" ? OutboxRow::Kind::Event : OutboxRow::Kind::Presence;
    row.channel = Col(r, i, 2);
    row.type = Col(r, i, 3);
    row.entity = Col(r, i, 4);
    row.entity_id = Col(r, i, 5);
    row.payload = Col(r, i, 6);
    metrics_->outbox_rows++;
    // One row that cannot be handled is counted and skipped (logged by the guard).
    if (on_row) core::Guard("outbox row", [&] { on_row(row); }, [&] { metrics_->outbox_rows_invalid++; });
  }
  // Every gap listed was looked up, and the ids between the rows above read_after were all
  // returned: each open gap was covered by this read.
  bool complete = fresh < opts_.batch_size;
  cursor_.Finish(horizon, true, last_id);
  cursor_.EndRead(complete);
  metrics_->outbox_gaps = static_cast<int64_t>(cursor_.gap_count());
  metrics_->outbox_gaps_given_up = cursor_.given_up();
  if (!complete) {
    Read();  // a backlog: on at once
    return;
  }
  if (doorbell_pending_) {
    ReadSoon();
    return;
  }
  // Open gaps: a transaction that took an id is still running (or ended without committing).
  // Its commit rings a doorbell; look again soon anyway so that the gap is closed.
  // While a long transaction keeps a gap open, look less often (up to 8x); a doorbell resets it.
  if (cursor_.gap_count() == 0) {
    gap_streak_ = 0;
    return;
  }
  uint64_t delay = static_cast<uint64_t>(opts_.gap_recheck_ms) << std::min(gap_streak_++ / 20, 3);
  uv_timer_start(recheck_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Outbox*>(t->data);
    core::Guard("outbox recheck", [&] {
      if (!self->busy_ && self->Connected()) self->Read();
    }, [&] { self->Recover(); });
  }, delay, 0);
}

void Outbox::HandOwn(const std::vector<OutboxRow>& rows) {
  if (closed_) return;
  bool read = false;
  for (const OutboxRow& row : rows) {
    if (!cursor_.AcceptOwn(row.id)) {
      // Not handed out: a read must take it (held back: a read must take the earlier ones).
      if (row.id > cursor_.after() || cursor_.held()) read = true;
      continue;
    }
    metrics_->outbox_rows_own++;
    if (on_row) core::Guard("outbox own row", [&] { on_row(row); }, [&] { metrics_->outbox_rows_invalid++; });
  }
  if (read) ReadLater();
}

void Outbox::OnDoorbell(int be_pid) {
  core::Guard("outbox doorbell", [&] { Ring(be_pid); }, [&] { Recover(); });
}

void Outbox::Ring(int be_pid) {
  if (closed_) return;
  metrics_->outbox_doorbells++;
  // The publisher's own commit: its rows are handed out from its answer (HandOwn).
  if (be_pid != 0 && be_pid == own_writer_pid_) {
    metrics_->outbox_doorbells_own++;
    return;
  }
  gap_streak_ = 0;
  if (!anchored_ || busy_) {
    doorbell_pending_ = true;
    return;
  }
  ReadSoon();
}

void Outbox::ReadSoon() {
  uint64_t since = uv_now(loop_) - last_read_ms_;
  uint64_t interval = static_cast<uint64_t>(std::max(opts_.min_read_interval_ms, 0));
  if (since >= interval) {
    Read();
    return;
  }
  doorbell_pending_ = true;
  if (uv_is_active(read_timer_.handle())) return;
  uv_timer_start(read_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Outbox*>(t->data);
    core::Guard("outbox paced read", [&] {
      // Busy (a prune, a read): the pending doorbell is served when that ends.
      if (!self->busy_ && self->anchored_ && self->Connected()) self->Read();
    }, [&] { self->Recover(); });
  }, interval - since, 0);
}

// Once a second: remember the watermark, poll when nothing rang for poll_ms, prune.
void Outbox::Tick() {
  if (closed_) return;
  if (!anchored_) {
    if (!busy_ && conn_.Ready() && listening_) Anchor();  // anchoring failed (or no listener yet): try again
    return;
  }
  uint64_t now = uv_now(loop_);
  marks_.emplace_back(now, cursor_.Watermark());
  while (marks_.size() > 2 && now - marks_[1].first >= static_cast<uint64_t>(opts_.retention_ms)) marks_.pop_front();
  if (busy_ || !Connected()) return;
  if (Prune()) return;
  if (opts_.poll_ms > 0 && now - last_read_ms_ >= static_cast<uint64_t>(opts_.poll_ms)) Read();
}

bool Outbox::Prune() {
  if (marks_.empty() || uv_now(loop_) - marks_.front().first < static_cast<uint64_t>(opts_.retention_ms)) return false;
  int64_t upto = marks_.front().second;
  if (upto <= pruned_upto_) return false;
  busy_ = true;
  bool sent = conn_.Send(kPruneSql, {std::to_string(upto)}, [this, upto](feed::QueryResult& r) {
    core::Guard("outbox prune", [&] {
      busy_ = false;
      if (!r.ok()) {
        if (!r.sqlstate.empty()) core::LogWarn("outbox prune failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
        return;
      }
      pruned_upto_ = upto;
      int64_t n = 0;
      if (r.rows() == 1 && ParseI64(r.value(0, 0), &n)) metrics_->outbox_pruned += static_cast<uint64_t>(n);
      if (doorbell_pending_) ReadSoon();
    }, [&] { Recover(); });
  });
  if (!sent) busy_ = false;
  return sent;
}

// After an exception in the outbox's own work (already logged by the guard): reconnect, which
// re-anchors and reads again (like the feed).
void Outbox::Recover() {
  busy_ = false;
  if (!closed_) conn_.Reset("internal error");
}

}  // namespace evstream::realtime
