#include "realtime/publisher.hpp"

#include <random>

#include "core/log.hpp"

namespace evstream::realtime {
namespace {
// The payloads travel as a JSON array of strings so that their bytes (and sizes) are exactly the
// ones checked here; NOTIFYs of one statement are delivered in this order.
const char* const kPublishSql =
    "SELECT pg_notify('evstream_ephemeral', p) FROM json_array_elements_text($1::json) p";

std::string NewUuid() {
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}
}  // namespace

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
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Publisher::Publisher(uv_loop_t* loop, feed::PgPool* pool, core::Metrics* metrics, int coalesce_ms)
    : loop_(loop), pool_(pool), metrics_(metrics), coalesce_ms_(coalesce_ms) {
  if (uv_timer_init(loop_, timer_.get()) == 0) timer_.MarkInitialised();
  timer_->data = this;
}

void Publisher::Close() {
  closed_ = true;
  if (timer_.initialised()) uv_timer_stop(timer_.get());
}

void Publisher::Publish(Publication p, Done done) {
  uint64_t ticket = next_ticket_++;
  waiting_.emplace(ticket, std::move(done));
  p.tickets = {ticket};
  bool chunk = Coalescer::IsChunk(p);
  if (coalescer_.Add(std::move(p))) metrics_->ephemeral_coalesced++;
  if (in_flight_) return;  // goes out when the round trip in flight ends
  if (chunk && coalesce_ms_ > 0) {
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer_.get())))
      uv_timer_start(timer_.get(), [](uv_timer_t* t) { static_cast<Publisher*>(t->data)->Flush(); },
                     coalesce_ms_, 0);
    return;
  }
  Flush();
}

void Publisher::Flush() {
  uv_timer_stop(timer_.get());
  if (in_flight_ || coalescer_.empty()) return;
  Send(coalescer_.TakeAll());
}

// One statement for the batch. If it fails (one bad event fails the transaction), each event is
// sent again on its own so that only the bad one reports the error.
void Publisher::Send(std::vector<Publication> batch) {
  in_flight_ = true;
  nlohmann::json arr = nlohmann::json::array();
  auto ids = std::make_shared<std::vector<std::string>>();
  for (const auto& p : batch) {
    ids->push_back(NewUuid());
    arr.push_back(EphemeralPayload(p, ids->back()));
  }
  auto shared = std::make_shared<std::vector<Publication>>(std::move(batch));
  pool_->Query(kPublishSql, {arr.dump()},
               [this, shared, ids](feed::QueryResult& r) {
                 if (r.ok() && r.rows() == static_cast<int>(shared->size())) {
                   for (size_t i = 0; i < shared->size(); i++) Finish((*shared)[i], nullptr, (*ids)[i]);
                   metrics_->ephemeral_published += shared->size();
                 } else if (!r.ok() && shared->size() > 1 && !r.sqlstate.empty()) {
                   auto singles = shared;
                   auto next = std::make_shared<std::function<void(size_t)>>();
                   // The pending query's callback keeps the step alive (weak self-reference: no cycle).
                   std::weak_ptr<std::function<void(size_t)>> weak_next = next;
                   *next = [this, singles, weak_next, ids](size_t i) {
                     if (i >= singles->size()) {
                       in_flight_ = false;
                       if (!closed_) Flush();
                       return;
                     }
                     auto next = weak_next.lock();
                     nlohmann::json one = nlohmann::json::array({EphemeralPayload((*singles)[i], (*ids)[i])});
                     pool_->Query(kPublishSql, {one.dump()},
                                  [this, singles, next, i, ids](feed::QueryResult& r1) {
                                    if (r1.ok() && r1.rows() == 1) {
                                      metrics_->ephemeral_published++;
                                      Finish((*singles)[i], nullptr, (*ids)[i]);
                                    } else {
                                      Finish((*singles)[i], &r1, "");
                                    }
                                    (*next)(i + 1);
                                  });
                   };
                   (*next)(0);
                   return;
                 } else {
                   for (const auto& p : *shared) Finish(p, &r, "");
                 }
                 in_flight_ = false;
                 if (!closed_) Flush();
               });
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
