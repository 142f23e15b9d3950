#include "realtime/presence.hpp"

#include <random>

#include "core/guard.hpp"
#include "core/input.hpp"
#include "core/json_out.hpp"
#include "core/log.hpp"
#include "feed/feed.hpp"

namespace evstream::realtime {
namespace {
// Only evstream_daemon (and the extension's owner) may call it: nobody else can fake presence.
const char* const kSendSql = "SELECT evstream._presence_send($1::jsonb)";
constexpr size_t kMaxStateBytes = 256 * 1024;  // a bigger state goes out as a heartbeat only
constexpr size_t kMaxName = 1024;              // channel and user names in messages

// A string member of a message, or "" when missing, not a string or too long.
std::string Str(const nlohmann::json& m, const char* key) {
  auto it = m.find(key);
  if (it == m.end() || !it->is_string()) return {};
  const auto& s = it->get_ref<const std::string&>();
  return s.size() <= kMaxName ? s : std::string();
}
}  // namespace

Presence::Presence(uv_loop_t* loop, PresenceOptions opts, hub::Fanout* fanout, feed::PgPool* pool,
                   core::Metrics* metrics)
    : loop_(loop), opts_(opts), fanout_(fanout), pool_(pool), metrics_(metrics) {
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  instance_ = buf;
  if (uv_timer_init(loop_, timer_.get()) == 0) timer_.MarkInitialised();
  timer_->data = this;
}

void Presence::Start() {
  uint64_t tick = static_cast<uint64_t>(std::max(50, std::min(500, opts_.heartbeat_ms / 2)));
  uv_timer_start(timer_.get(), [](uv_timer_t* t) {
    core::Guard("presence tick", [&] { static_cast<Presence*>(t->data)->Tick(); });
  }, tick, tick);
}

void Presence::Close() {
  closed_ = true;
  if (timer_.initialised()) uv_timer_stop(timer_.get());
}

void Presence::Join(const std::string& user, const std::vector<std::string>& channels) {
  if (home_ && !home_->IsCurrent()) {
    home_->Post([this, user, channels] { Join(user, channels); });
    return;
  }
  if (closed_ || user.empty()) return;
  for (const auto& ch : channels) {
    std::pair<std::string, std::string> key{ch, user};
    if (local_[key]++ > 0) continue;
    if (leaving_.erase(key)) continue;  // back within the grace period: never left
    Apply(instance_, ch, user, true);
    Notify({{"op", "join"}, {"instance", instance_}, {"channel", ch}, {"userId", user}});
  }
}

void Presence::Leave(const std::string& user, const std::vector<std::string>& channels) {
  if (home_ && !home_->IsCurrent()) {
    home_->Post([this, user, channels] { Leave(user, channels); });
    return;
  }
  if (closed_ || user.empty()) return;
  for (const auto& ch : channels) {
    auto it = local_.find({ch, user});
    if (it == local_.end() || --it->second > 0) continue;
    // Leave after a grace period: a reload (close + reopen) or a tab moving to another
    // instance does not flap, and the other instances' joins have time to arrive.
    leaving_[it->first] = uv_now(loop_) + static_cast<uint64_t>(opts_.leave_grace_ms);
  }
}

std::vector<std::string> Presence::Members(const std::string& channel) const {
  std::vector<std::string> out;
  if (auto it = global_.find(channel); it != global_.end())
    for (const auto& [user, n] : it->second) out.push_back(user);
  return out;
}

void Presence::MembersThen(const std::string& channel, std::function<void(std::vector<std::string>)> done) {
  core::Mailbox* back = core::Mailbox::Current();
  core::RunOn(home_, [this, channel, done, back] {
    std::vector<std::string> members = Members(channel);
    core::RunOn(back, [done, members] { done(members); });
  });
}

void Presence::Apply(const std::string& instance, const std::string& channel, const std::string& user,
                     bool join) {
  Instance& in = instances_[instance];
  if (join) {
    if (!in.members[channel].insert(user).second) return;
    if (global_[channel][user]++ == 0) Emit(channel, "presence", {{"action", "join"}, {"userId", user}});
    return;
  }
  auto ch = in.members.find(channel);
  if (ch == in.members.end() || ch->second.erase(user) == 0) return;
  if (ch->second.empty()) in.members.erase(ch);
  auto& users = global_[channel];
  if (--users[user] > 0) return;
  users.erase(user);
  if (users.empty()) global_.erase(channel);
  Emit(channel, "presence", {{"action", "leave"}, {"userId", user}});
  if (typing_.erase({channel, user}))
    Emit(channel, "typing", {{"userId", user}, {"isTyping", false}, {"expired", true}});
}

// An instance's full member list: the differences become joins and leaves.
void Presence::Replace(const std::string& instance, const Members_& members) {
  Members_ old = instances_[instance].members;
  for (const auto& [ch, users] : old)
    for (const auto& u : users) {
      auto it = members.find(ch);
      if (it == members.end() || !it->second.count(u)) Apply(instance, ch, u, false);
    }
  for (const auto& [ch, users] : members)
    for (const auto& u : users) Apply(instance, ch, u, true);
}

void Presence::Drop(const std::string& instance) {
  Replace(instance, {});
  instances_.erase(instance);
}

void Presence::Emit(const std::string& channel, const std::string& type, const nlohmann::json& data) {
  if (closed_) return;
  nlohmann::ordered_json j = {{"type", type},          {"channel", channel},  {"entity", nullptr},
                              {"id", nullptr},         {"data", data},        {"ephemeral", true},
                              {"createdBy", "system"}, {"timestamp", core::IsoTime(core::NowSeconds())}};
  core::LogDebug("presence emit", {{"channel", channel}, {"type", type}, {"data", data}});
  fanout_->Ephemeral(feed::MakeEphemeral(channel, type, core::DumpJson(j)));
}

// A message from the outbox (written by an evstream_daemon member): every field type-checked.
void Presence::OnMessage(const std::string& payload) {
  if (closed_) return;
  nlohmann::json m = nlohmann::json::parse(payload, nullptr, false);
  if (m.is_discarded() || !m.is_object()) return;
  std::string op = Str(m, "op"), from = Str(m, "instance");
  if (from.empty() || from == instance_) return;
  if (op != "sync" && op != "bye" && op != "join" && op != "leave" && op != "state") return;
  metrics_->presence_messages++;
  core::LogDebug("presence message", {{"payload", payload}});
  if (op == "sync") {
    last_state_sent_ = 0;  // answer with our state on the next tick (soon)
    SendState();
    return;
  }
  if (op == "bye") {
    Drop(from);
    return;
  }
  instances_[from].last_seen = uv_now(loop_);
  if (op == "join" || op == "leave") {
    std::string ch = Str(m, "channel"), user = Str(m, "userId");
    if (!ch.empty() && !user.empty()) Apply(from, ch, user, op == "join");
  } else if (op == "state") {
    auto it = m.find("members");
    if (it == m.end() || !it->is_object()) return;  // too big to send: heartbeat only
    Members_ members;
    for (auto& [ch, users] : it->items())
      if (users.is_array() && !ch.empty() && ch.size() <= kMaxName)
        for (const auto& u : users)
          if (u.is_string() && !u.get_ref<const std::string&>().empty() && u.get_ref<const std::string&>().size() <= kMaxName)
            members[ch].insert(u.get<std::string>());
    Replace(from, members);
  }
}

void Presence::OnListening() {
  if (closed_) return;
  // Whatever we heard before may be stale: ask everyone for their state; tell ours.
  Notify({{"op", "sync"}, {"instance", instance_}});
  SendState();
}

void Presence::OnEphemeral(const feed::EphemeralEvent& ev) {
  if (ev.type != "typing") return;
  // Typed reads: the payload may come from any publisher (evstream.publish in SQL too), so
  // "isTyping": "x" or a non-string userId is ignored, never thrown on.
  nlohmann::json j = nlohmann::json::parse(ev.json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  auto d = j.find("data");
  if (d == j.end() || !d->is_object()) return;
  std::string user = Str(*d, "userId");
  if (user.empty()) return;
  std::pair<std::string, std::string> key{ev.channel, user};
  auto typing = d->find("isTyping");
  if (typing != d->end() && typing->is_boolean() && typing->get<bool>())
    typing_[key] = uv_now(loop_) + static_cast<uint64_t>(opts_.typing_ttl_ms);
  else
    typing_.erase(key);
}

void Presence::SendState() {
  last_state_sent_ = uv_now(loop_);
  nlohmann::json members = nlohmann::json::object();
  if (auto it = instances_.find(instance_); it != instances_.end())
    for (const auto& [ch, users] : it->second.members) members[ch] = users;
  nlohmann::json msg = {{"op", "state"}, {"instance", instance_}, {"members", members}};
  if (core::DumpJson(msg).size() > kMaxStateBytes) msg.erase("members");
  Notify(std::move(msg));
}

void Presence::Notify(nlohmann::json msg) {
  if (closed_) return;
  outbox_.push_back(core::DumpJson(msg));
  SendQueued();
}

// One statement in flight: presence messages of this instance reach the others in order.
void Presence::SendQueued() {
  if (sending_ || outbox_.empty() || closed_) return;
  std::string arr = "[";
  for (size_t i = 0; i < outbox_.size(); i++) arr += (i ? "," : "") + outbox_[i];
  arr += "]";
  outbox_.clear();
  sending_ = true;
  pool_->Query(kSendSql, {arr}, [this](feed::QueryResult& r) {
    sending_ = false;
    core::Guard("presence send", [&] {
      if (!r.ok() && !closed_) core::LogWarn("presence send failed", {{"error", r.error}, {"sqlstate", r.sqlstate}});
      SendQueued();
    });
  });
}

void Presence::Tick() {
  if (closed_) return;
  uint64_t now = uv_now(loop_);
  if (now - last_state_sent_ >= static_cast<uint64_t>(opts_.heartbeat_ms)) SendState();
  std::vector<std::string> dead;
  for (const auto& [id, in] : instances_)
    if (id != instance_ && now - in.last_seen > static_cast<uint64_t>(opts_.expiry_ms)) dead.push_back(id);
  for (const auto& id : dead) {
    core::LogInfo("presence: instance expired", {{"instance", id}});
    Drop(id);
  }
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    auto key = it->first;
    it = leaving_.erase(it);
    local_.erase(key);
    Apply(instance_, key.first, key.second, false);
    Notify({{"op", "leave"}, {"instance", instance_}, {"channel", key.first}, {"userId", key.second}});
  }
  for (auto it = typing_.begin(); it != typing_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    auto key = it->first;
    it = typing_.erase(it);
    Emit(key.first, "typing", {{"userId", key.second}, {"isTyping", false}, {"expired", true}});
  }
}

}  // namespace evstream::realtime
