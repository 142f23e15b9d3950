// Presence payloads (daemon/src/realtime/presence.cpp): the outbox messages other instances send
// ({"op":"join"|"leave"|"state"|"sync"|"bye",...}), interleaved with local joins/leaves and typing
// events. Input: lines, each an action chosen by its first byte:
//   m<payload>             Presence::OnMessage(payload)      (also any line with another first byte)
//   j<user>\t<ch>,<ch>...  Join      l<user>\t<ch>,...  Leave   (empty channel names skipped:
//                          the daemon joins the exact channels of a verified token; users and
//                          channels not valid UTF-8 skipped: they come from a token's JSON)
//   t<channel>\t<payload>  a typing ephemeral event (parsed as the outbox reader does)
// Properties: nothing throws out of it or crashes; every presence/typing frame it emits is one SSE
// event on a non-empty channel; per (channel, user) the presence events alternate join, leave,
// join... starting with join (one join however many instances and tabs); Members() lists exactly
// the users joined and not left.
#include <uv.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "feed/pool.hpp"
#include "fuzz_util.hpp"
#include "hub/fanout.hpp"
#include "hub/hub.hpp"
#include "core/log.hpp"
#include "realtime/presence.hpp"

namespace {
namespace feed = evstream::feed;
namespace hub = evstream::hub;

// Subscribes to every channel and checks what presence emits.
class Watcher : public hub::Subscriber {
 public:
  Watcher() { channels_.prefixes = {""}; }
  const evstream::auth::ChannelSet& Channels() const override { return channels_; }
  void OnEvent(const feed::EventPtr&) override { FUZZ_CHECK(false, "presence published a log event"); }
  void OnEphemeral(const feed::EphemeralPtr& ev) override {
    FUZZ_CHECK(!ev->channel.empty(), "presence event without a channel");
    const std::string& f = *ev->frame;
    FUZZ_CHECK(f.size() >= 2 && f.compare(f.size() - 2, 2, "\n\n") == 0, "frame does not end the event");
    FUZZ_CHECK(f.substr(0, f.size() - 1).find("\n\n") == std::string::npos, "blank line inside the frame");
    if (ev->type != "presence") return;
    nlohmann::json j = nlohmann::json::parse(ev->json, nullptr, false);
    FUZZ_CHECK(j.is_object() && j["data"].is_object(), "presence frame is not an object");
    const auto& d = j["data"];
    FUZZ_CHECK(d["userId"].is_string() && d["action"].is_string(), "presence frame without userId/action");
    std::string user = d["userId"], action = d["action"];
    auto& members = joined[ev->channel];
    if (action == "join") {
      FUZZ_CHECK(members.insert(user).second, "a second join without a leave");
    } else {
      FUZZ_CHECK(action == "leave", "presence action neither join nor leave");
      FUZZ_CHECK(members.erase(user) == 1, "a leave without a join");
      if (members.empty()) joined.erase(ev->channel);
    }
  }
  std::map<std::string, std::set<std::string>> joined;

 private:
  evstream::auth::ChannelSet channels_;
};

// Local joins and leaves name the exact channels of a verified token: never an empty name.
std::vector<std::string> Channels(const std::string& s) {
  std::vector<std::string> out;
  for (auto& c : fuzz::Split(s, ',', 64))
    if (!c.empty() && fuzz::IsUtf8(c)) out.push_back(std::move(c));
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One loop and one pool (without a connection: every send fails, asynchronously) for the
  // whole run; a fresh Presence per input.
  static uv_loop_t* loop = [] {
    evstream::core::SetLogLevel(evstream::core::LogLevel::Error);  // every send fails: quiet
    auto* l = new uv_loop_t;
    uv_loop_init(l);
    return l;
  }();
  static feed::PgPool* pool = new feed::PgPool(loop, "", 0);
  {
    evstream::core::Metrics metrics;
    hub::Hub h;
    Watcher w;
    h.Add(&w);
    hub::Fanout fanout;
    fanout.Add(&h, nullptr, nullptr);
    evstream::realtime::Presence presence(loop, {}, &fanout, pool, &metrics);
    for (const std::string& line : fuzz::Split(fuzz::View(data, size), '\n', 256)) {
      char op = line.empty() ? 'm' : line[0];
      std::string rest = line.empty() ? line : line.substr(1);
      if (op == 'j' || op == 'l') {
        auto parts = fuzz::Split(rest, '\t', 2);
        auto chans = Channels(parts.size() > 1 ? parts[1] : "");
        if (!fuzz::IsUtf8(parts[0])) continue;  // a token's sub is JSON text: valid UTF-8
        if (op == 'j') presence.Join(parts[0], chans);
        else presence.Leave(parts[0], chans);
      } else if (op == 't') {
        auto parts = fuzz::Split(rest, '\t', 2);
        if (auto ev = feed::EphemeralFromOutbox(parts[0], "typing", parts.size() > 1 ? parts[1] : ""))
          presence.OnEphemeral(*ev);
      } else {
        presence.OnMessage(op == 'm' ? rest : line);
      }
      uv_run(loop, UV_RUN_NOWAIT);  // the failed sends come back
      for (const auto& [ch, users] : w.joined) {
        auto m = presence.Members(ch);
        FUZZ_CHECK(std::set<std::string>(m.begin(), m.end()) == users, "Members() differs from the joins seen");
      }
    }
    presence.Close();
    uv_run(loop, UV_RUN_NOWAIT);  // the last failed sends reach the closed presence
    h.Remove(&w);
  }
  uv_run(loop, UV_RUN_NOWAIT);  // the timer's close callback
  FUZZ_CHECK(!uv_loop_alive(loop), "a handle outlived the presence object");
  return 0;
}
