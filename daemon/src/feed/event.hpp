// One event of the log as the daemon carries it: the fields needed for routing plus its
// serialised forms, built once and shared by every subscriber.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace evstream::feed {

// The gap-free order of the log: (tx, position).
struct LogKey {
  uint64_t tx = 0;
  int64_t position = 0;
  bool operator<(const LogKey& o) const { return tx != o.tx ? tx < o.tx : position < o.position; }
  bool operator<=(const LogKey& o) const { return !(o < *this); }
};

// Column values as text (libpq text format); null JSON columns are empty with *_null set.
struct EventRow {
  int64_t position = 0;
  uint64_t tx = 0;
  std::string channel, aggregate_type, aggregate_id, event_type, event_id;
  int version = 0;
  std::string data_json, metadata_json, display_json;  // jsonb text, one line
  bool display_null = true;
  std::string timestamp;  // ISO 8601 UTC
  std::string correlation_id, causation_id, created_by;
  bool correlation_null = true, causation_null = true;
  double created_epoch = 0;
};

struct Event {
  LogKey key;
  std::string channel, aggregate_type, aggregate_id, event_type;
  double created_epoch = 0;
  std::string json;                          // the frame's data object, one line
  std::shared_ptr<const std::string> frame;  // "id: …\nevent: …\ndata: …\n\n"
};
using EventPtr = std::shared_ptr<const Event>;

// An ephemeral event (evstream.publish, presence, typing): never stored, so no position and no
// SSE id: line. `frame` is "event: <type>\ndata: <payload>\n\n", built once per instance.
struct EphemeralEvent {
  std::string channel, type, entity, id;
  std::string json;                          // the frame's data object
  std::shared_ptr<const std::string> frame;
};
using EphemeralPtr = std::shared_ptr<const EphemeralEvent>;

// Types nobody may publish: the stream's control frames (a fake `reset` would make clients
// reload) and `presence` (evstreamd's own).
bool IsReservedEphemeralType(const std::string& type);

// Parses an ephemeral event's frame object (the payload evstream.publish stores in the outbox);
// nullptr when it is not an object with string "type" and "channel", or the type is reserved.
EphemeralPtr ParseEphemeral(const std::string& payload);
// An outbox row of kind 'event': its payload parsed as above, and its channel and type the
// row's own columns (nullptr otherwise).
EphemeralPtr EphemeralFromOutbox(const std::string& channel, const std::string& type, const std::string& payload);
// Builds one from parts (presence and typing events made by evstreamd itself).
EphemeralPtr MakeEphemeral(const std::string& channel, const std::string& type, const std::string& json);

// {"type":…,"channel":…,"entity":…,"id":…,"version":…,"position":…,"eventId":…,"data":…,
//  "metadata":…,"display":…,"timestamp":…,"correlationId":…,"causationId":…,"createdBy":…}
std::string EventJson(const EventRow& row);
EventPtr MakeEvent(const EventRow& row);

// The SELECT list matching EventRow, for any function returning evstream.events ("e").
extern const char* const kEventColumns;
constexpr int kEventColumnCount = 16;

}  // namespace evstream::feed
