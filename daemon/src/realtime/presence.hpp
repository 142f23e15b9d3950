// Presence (who is connected to which channel) and typing expiry across evstreamd instances.
//
// Each instance counts its own streams per (channel, user) and tells the others through the
// outbox (evstream._presence_send, evstream_daemon only; read by every instance's Outbox): {"op":"join"|"leave","instance","channel","userId"} when a user's first
// stream opens / last stream closes here, {"op":"state","instance","members":{channel:[users]}}
// as a heartbeat (authoritative: it repairs missed messages), {"op":"sync"} on (re)connect (asks
// everyone for a state now). Every instance keeps the union of all instances' members and turns
// its changes into `presence` events (a user whose last stream here closes leaves after
// leave_grace_ms, unless a stream reopens meanwhile) ({"action":"join"|"leave","userId"}) for its own
// subscribers, so every subscriber everywhere sees one join per user however many tabs, and the
// members of an instance that stops sending heartbeats leave after expiry_ms.
//
// Typing: `typing` ephemeral events ({"userId","isTyping"}) are remembered per (channel, user);
// one not refreshed within typing_ttl_ms (or whose user left) gets {"isTyping":false,
// "expired":true} delivered by every instance to its subscribers.
#pragma once
#include <uv.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/metrics.hpp"
#include "core/uv_handle.hpp"
#include "feed/event.hpp"
#include "feed/pool.hpp"
#include "hub/fanout.hpp"

namespace evstream::realtime {

struct PresenceOptions {
  int heartbeat_ms = 5000;
  int expiry_ms = 15000;
  int typing_ttl_ms = 6000;
  int leave_grace_ms = 1000;
};

class Presence {
 public:
  // Presence events go to every loop's subscribers through `fanout`.
  Presence(uv_loop_t* loop, PresenceOptions opts, hub::Fanout* fanout, feed::PgPool* pool, core::Metrics* metrics);
  // The loop Presence lives on (--threads): Join, Leave and MembersThen may then be called from
  // any loop; they run there.
  void SetHome(core::Mailbox* home) { home_ = home; }
  void Start();
  void Close();
  // A stream of `user` opened / closed on these (exact) channels.
  void Join(const std::string& user, const std::vector<std::string>& channels);
  void Leave(const std::string& user, const std::vector<std::string>& channels);
  void OnMessage(const std::string& payload);       // a presence row of the outbox
  void OnListening();                               // the outbox reader (re)anchored: resynchronise
  void OnEphemeral(const feed::EphemeralEvent& ev);  // typing bookkeeping
  std::vector<std::string> Members(const std::string& channel) const;  // on the home loop
  // The members, answered on the caller's loop.
  void MembersThen(const std::string& channel, std::function<void(std::vector<std::string>)> done);
  const std::string& instance() const { return instance_; }

 private:
  using Members_ = std::map<std::string, std::set<std::string>>;  // channel -> users
  struct Instance {
    Members_ members;
    uint64_t last_seen = 0;
  };
  void Apply(const std::string& instance, const std::string& channel, const std::string& user, bool join);
  void Replace(const std::string& instance, const Members_& members);
  void Drop(const std::string& instance);
  void Emit(const std::string& channel, const std::string& type, const nlohmann::json& data);
  void Notify(nlohmann::json msg);
  void SendQueued();
  void SendState();
  void Tick();

  uv_loop_t* loop_;
  PresenceOptions opts_;
  hub::Fanout* fanout_;
  core::Mailbox* home_ = nullptr;
  feed::PgPool* pool_;
  core::Metrics* metrics_;
  std::string instance_;
  bool closed_ = false;
  std::map<std::pair<std::string, std::string>, int> local_;  // (channel, user) -> open streams here
  std::map<std::pair<std::string, std::string>, uint64_t> leaving_;  // last stream closed: leave at
  std::map<std::string, Instance> instances_;
  std::map<std::string, std::map<std::string, int>> global_;    // channel -> user -> instances
  std::map<std::pair<std::string, std::string>, uint64_t> typing_;  // (channel, user) -> expires at
  std::vector<std::string> outbox_;
  bool sending_ = false;
  uint64_t last_state_sent_ = 0;
  core::UvHandle<uv_timer_t> timer_;
};

}  // namespace evstream::realtime
