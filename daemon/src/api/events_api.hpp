// The HTTP API beside the stream (same tokens and claims rule):
//   POST /api/events                                  append through evstream.post_event
//   GET  /api/events?channel=&after=&limit=&topic=    history in the gap-free order
//   GET  /api/streams/{aggregate_type}/{aggregate_id} one aggregate's history
// Authentication and channel choice happen in the route middleware (api/app.cpp); database
// work goes through the async pool; the loop never blocks.
#pragma once
#include "api/common.hpp"

namespace evstream::api {

class EventsApi {
 public:
  explicit EventsApi(EventsDeps deps) : d_(deps) {}
  void Post(Call& c);
  void History(Call& c);
  void Stream(Call& c);

 private:
  EventsDeps d_;
};

}  // namespace evstream::api
