#include "realtime/publisher.hpp"

#include <cerrno>
#include <cstdlib>

#include "core/guard.hpp"
#include "core/json_out.hpp"
#include "core/log.hpp"

namespace evstream::realtime {
namespace {
// One row per item, in order: the ephemeralId, the outbox row's id and its payload.
const char* const kPublishSql = "SELECT ephemeral_id::text, outbox_id, payload FROM evstream._publish_batch($1::jsonb)";

bool ParseId(const char* s, int64_t* out) {
  if (s == nullptr || *s == '\0') return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v <= 0) return false;
  *out = v;
  return true;
}
}  // namespace

std::string PublishItems(const std::vector<Publication>& batch, size_t from, size_t count) {
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = from; i < from + count && i < batch.size(); i++) {
    const Publication& p = batch[i];
    nlohmann::json item = {{"claims", p.claims}, {"channel", p.channel}, {"type", p.type}, {"data", p.data}};
    if (!p.entity.empty()) item["entity"] = p.entity;
    if (!p.id.empty()) item["id"] = p.id;
    arr.push_back(std::move(item));
  }
  return core::DumpJson(arr);
}

std::string EphemeralPayload(const Publication& p, const std::string& ephemeral_id) {
  nlohmann::ordered_json j = {{"type", p.type},
                              {"channel", p.channel},
                              {"entity", p.entity.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(p.entity)},
                              {"id", p.id.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(p.id)},
                              {"data", p.data},
                              {"ephemeral", true},
                              {"ephemeralId", ephemeral_id},
                              {"createdBy", p.created_by},
                              {"timestamp", core::IsoTime(core::NowSeconds())}};
  return core::DumpJson(j);
}

Publisher::Publisher(uv_loop_t* loop, const std::string& conninfo, const std::string& pg_options,
                     core::Metrics* metrics, int coalesce_ms)
    : loop_(loop), conn_(loop, conninfo, "publish"), metrics_(metrics), coalesce_ms_(coalesce_ms) {
  conn_.SetOptions(pg_options);
  if (uv_timer_init(loop_, timer_.get()) == 0) timer_.MarkInitialised();
  timer_->data = this;
  conn_.on_connected = [this] {
    core::Guard("publish connected", [&] {
      if (on_writer) on_writer(conn_.BackendPid());
      if (!closed_) Flush();  // what waited for the connection
    }, [&] { Recover(); });
  };
  conn_.on_disconnected = [this](const std::string&) {
    core::Guard("publish disconnected", [&] {
      if (on_writer) on_writer(0);
    });
  };
}

void Publisher::Start() { conn_.Start(); }

void Publisher::Close() {
  closed_ = true;
  on_rows = nullptr;
  on_writer = nullptr;
  on_lost = nullptr;
  if (timer_.initialised()) uv_timer_stop(timer_.get());
  conn_.Close();
}

void Publisher::Publish(Publication p, Done done) {
  if (home_ && !home_->IsCurrent()) {
    core::Mailbox* back = core::Mailbox::Current();
    if (!back) return;  // not a loop thread: nothing can answer it (never the case)
    // From another loop: coalesced with everyone else's on the publisher's loop; the answer
    // (an error copied without its result) goes back to the caller's loop.
    home_->Post([this, p = std::move(p), done = std::move(done), back]() mutable {
      PublishHere(std::move(p), [done, back](const feed::QueryResult* error, const std::string& id, int chunks) {
        std::shared_ptr<feed::QueryResult> copy;
        if (error) {
          copy = std::make_shared<feed::QueryResult>();
          copy->error = error->error;
          copy->sqlstate = error->sqlstate;
          copy->detail = error->detail;
          copy->hint = error->hint;
          copy->overloaded = error->overloaded;
        }
        back->Post([done, copy, id, chunks] { done(copy.get(), id, chunks); });
      });
    });
    return;
  }
  PublishHere(std::move(p), std::move(done));
}

void Publisher::PublishHere(Publication p, Done done) {
  uint64_t ticket = next_ticket_++;
  waiting_.emplace(ticket, std::move(done));
  p.tickets = {ticket};
  bool chunk = Coalescer::IsChunk(p);
  if (coalescer_.Add(std::move(p))) metrics_->ephemeral_coalesced++;
  if (in_flight_) return;  // goes out when the round trip in flight ends
  if (chunk && coalesce_ms_ > 0) {
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer_.get())))
      uv_timer_start(timer_.get(), [](uv_timer_t* t) {
        auto* self = static_cast<Publisher*>(t->data);
        core::Guard("publish timer", [&] { self->Flush(); }, [&] { self->Recover(); });
      }, coalesce_ms_, 0);
    return;
  }
  Flush();
}

void Publisher::Flush() {
  uv_timer_stop(timer_.get());
  if (in_flight_ || coalescer_.empty() || closed_) return;
  switch (conn_.state()) {
    case feed::PgConnection::State::Ready:
      Send(coalescer_.TakeAll());
      return;
    case feed::PgConnection::State::Disconnected:
    case feed::PgConnection::State::Closed:
      FailWaiting("database unavailable");  // fail fast, as the pool does while the database is down
      return;
    default:
      return;  // connecting: sent once connected
  }
}

void Publisher::FailWaiting(const std::string& why) {
  coalescer_.TakeAll();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  feed::QueryResult err;
  err.error = why;
  for (auto& [ticket, done] : waiting) core::Guard("publish answer", [&] { done(&err, "", 0); });
}

void Publisher::Query(const std::string& items, feed::PgConnection::Callback cb) {
  auto done = [this, cb](feed::QueryResult& r) {
    // No answer (the connection went): the statement may have committed before it went.
    if (!r.ok() && r.sqlstate.empty() && on_lost) core::Guard("publish lost", [&] { on_lost(); });
    cb(r);
  };
  bool sent = conn_.Send(kPublishSql, {items}, done);
  if (!sent) {
    feed::QueryResult err;
    err.error = "database unavailable";
    cb(err);
  }
}

bool Publisher::Rows(const feed::QueryResult& r, const std::vector<Publication>& batch, size_t from, size_t n,
                     std::vector<std::string>* ids) {
  if (!r.ok() || r.rows() != static_cast<int>(n) || r.columns() != 3) return false;
  std::vector<OutboxRow> rows;
  rows.reserve(n);
  for (size_t i = 0; i < n; i++) {
    int row = static_cast<int>(i);
    OutboxRow o;
    if (r.null(row, 0) || r.null(row, 2) || !ParseId(r.value(row, 1), &o.id)) return false;
    ids->emplace_back(r.value(row, 0));
    const Publication& p = batch[from + i];
    o.kind = OutboxRow::Kind::Event;
    o.channel = p.channel;
    o.type = p.type;
    o.entity = p.entity;
    o.entity_id = p.id;
    o.payload = r.value(row, 2);
    rows.push_back(std::move(o));
  }
  if (on_rows) core::Guard("publish rows", [&] { on_rows(rows); });
  return true;
}

// One statement for the batch. If it fails (one bad event fails the transaction), each event is
// sent again on its own so that only the bad one reports the error.
void Publisher::Send(std::vector<Publication> batch) {
  in_flight_ = true;
  auto shared = std::make_shared<std::vector<Publication>>(std::move(batch));
  Query(PublishItems(*shared, 0, shared->size()), [this, shared](feed::QueryResult& r) {
    core::Guard("publish result", [&] {
      std::vector<std::string> ids;
      if (Rows(r, *shared, 0, shared->size(), &ids)) {
        for (size_t i = 0; i < shared->size(); i++) Finish((*shared)[i], nullptr, ids[i]);
        metrics_->ephemeral_published += shared->size();
      } else if (!r.ok() && shared->size() > 1 && !r.sqlstate.empty()) {
        auto singles = shared;
        auto next = std::make_shared<std::function<void(size_t)>>();
        // The pending query's callback keeps the step alive (weak self-reference: no cycle).
        std::weak_ptr<std::function<void(size_t)>> weak_next = next;
        *next = [this, singles, weak_next](size_t i) {
          if (i >= singles->size()) {
            in_flight_ = false;
            if (!closed_) Flush();
            return;
          }
          auto next = weak_next.lock();
          Query(PublishItems(*singles, i, 1), [this, singles, next, i](feed::QueryResult& r1) {
            core::Guard("publish result", [&] {
              std::vector<std::string> one;
              if (Rows(r1, *singles, i, 1, &one)) {
                metrics_->ephemeral_published++;
                Finish((*singles)[i], nullptr, one[0]);
              } else {
                if (r1.ok() && on_lost) on_lost();  // committed, but the answer was unusable
                Finish((*singles)[i], &r1, "");
              }
              (*next)(i + 1);
            }, [&] { Recover(); });
          });
        };
        (*next)(0);
        return;
      } else {
        if (r.ok() && on_lost) on_lost();  // committed, but the answer was unusable: read the rows
        for (const auto& p : *shared) Finish(p, &r, "");
      }
      in_flight_ = false;
      if (!closed_) Flush();
    }, [&] { Recover(); });
  });
}

// After an exception in the publish path (already logged): every waiting request fails with 500
// and publishing starts afresh, so one bad publication never wedges the ones after it.
void Publisher::Recover() {
  in_flight_ = false;
  coalescer_.TakeAll();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  feed::QueryResult err;
  err.error = "internal error";
  err.sqlstate = "XX000";
  for (auto& [ticket, done] : waiting) core::Guard("publish answer", [&] { done(&err, "", 0); });
}

void Publisher::Finish(const Publication& p, const feed::QueryResult* error, const std::string& id) {
  for (uint64_t t : p.tickets) {
    auto it = waiting_.find(t);
    if (it == waiting_.end()) continue;
    Done done = std::move(it->second);
    waiting_.erase(it);
    done(error, id, p.chunks);
  }
}

}  // namespace evstream::realtime
