// Read-only HTTP API beside the log (issue 7), same tokens; results filtered by the claims rule:
//   GET /api/events/{eventId}   one stored event (404 when missing or not readable)
//   GET /api/event-types        the catalog: schema, description, example per event type
//   GET /api/stats              per event type: count, first and last time (allowed channels only)
#pragma once
#include "api/events_api.hpp"

namespace evstream::api {

class CatalogApi {
 public:
  explicit CatalogApi(EventsDeps deps) : d_(deps) {}
  void Event(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);
  void EventTypes(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);
  void Stats(const http::ConnectionPtr& conn, http::Request& req, const http::Headers& extra);

 private:
  EventsDeps d_;
};

}  // namespace evstream::api
