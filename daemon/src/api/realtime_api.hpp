// The real-time HTTP API (issue 7), same tokens and claims rule as POST /api/events:
//   POST /api/publish                 an ephemeral event: delivered to current subscribers of the
//                                     channel on every instance, never stored (202)
//   GET  /api/presence?channel=…      the channel's current members across instances
#pragma once
#include "api/common.hpp"
#include "realtime/presence.hpp"
#include "realtime/publisher.hpp"

namespace evstream::api {

class RealtimeApi {
 public:
  RealtimeApi(EventsDeps deps, realtime::Publisher* publisher, realtime::Presence* presence)
      : d_(deps), publisher_(publisher), presence_(presence) {}
  void Publish(Call& c);
  void PresenceList(Call& c);

 private:
  EventsDeps d_;
  realtime::Publisher* publisher_;
  realtime::Presence* presence_;
};

}  // namespace evstream::api
