#include "feed/event.hpp"

#include <nlohmann/json.hpp>

#include "core/json_out.hpp"
#include "sse/frame.hpp"

namespace evstream::feed {

const char* const kEventColumns =
    "e.position, e.order_key::text, e.channel, e.aggregate_type, e.aggregate_id, e.version, e.event_type,"
    " e.id, e.data, e.metadata, e.display,"
    " to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    " e.correlation_id, e.causation_id, e.created_by, extract(epoch FROM e.created_at)::float8";

namespace {
std::string Str(const std::string& s) { return core::JsonString(s); }
}  // namespace

std::string EventJson(const EventRow& r) {
  // jsonb's text output is valid one-line JSON: spliced as is instead of parsed and re-dumped.
  std::string j;
  j.reserve(256 + r.data_json.size() + r.metadata_json.size() + r.display_json.size());
  j += "{\"type\":" + Str(r.event_type);
  j += ",\"channel\":" + Str(r.channel);
  j += ",\"entity\":" + Str(r.aggregate_type);
  j += ",\"id\":" + Str(r.aggregate_id);
  j += ",\"version\":" + std::to_string(r.version);
  j += ",\"position\":" + std::to_string(r.position);
  j += ",\"eventId\":" + Str(r.event_id);
  j += ",\"data\":" + (r.data_json.empty() ? std::string("{}") : r.data_json);
  j += ",\"metadata\":" + (r.metadata_json.empty() ? std::string("{}") : r.metadata_json);
  j += ",\"display\":" + (r.display_null ? std::string("null") : r.display_json);
  j += ",\"timestamp\":" + Str(r.timestamp);
  j += ",\"correlationId\":" + (r.correlation_null ? std::string("null") : Str(r.correlation_id));
  j += ",\"causationId\":" + (r.causation_null ? std::string("null") : Str(r.causation_id));
  j += ",\"createdBy\":" + Str(r.created_by);
  j += "}";
  return j;
}

EventPtr MakeEvent(const EventRow& row) {
  auto ev = std::make_shared<Event>();
  ev->key = {row.tx, row.position};
  ev->channel = row.channel;
  ev->aggregate_type = row.aggregate_type;
  ev->aggregate_id = row.aggregate_id;
  ev->event_type = row.event_type;
  ev->created_epoch = row.created_epoch;
  ev->json = EventJson(row);
  ev->frame = std::make_shared<const std::string>(
      sse::Frame(row.event_type, ev->json, std::to_string(row.position)));
  return ev;
}

}  // namespace evstream::feed

namespace evstream::feed {

bool IsReservedEphemeralType(const std::string& type) {
  return type == "connected" || type == "heartbeat" || type == "reset" || type == "overflow" || type == "reauth" ||
         type == "error" || type == "presence";
}

EphemeralPtr MakeEphemeral(const std::string& channel, const std::string& type, const std::string& json) {
  auto ev = std::make_shared<EphemeralEvent>();
  ev->channel = channel;
  ev->type = type;
  ev->json = json;
  ev->frame = std::make_shared<const std::string>(sse::Frame(type, json));
  return ev;
}

EphemeralPtr ParseEphemeral(const std::string& payload) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return nullptr;
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string type = str("type"), channel = str("channel");
  if (type.empty() || channel.empty() || IsReservedEphemeralType(type)) return nullptr;
  auto ev = std::make_shared<EphemeralEvent>();
  ev->channel = channel;
  ev->type = type;
  ev->entity = str("entity");
  ev->id = str("id");
  ev->json = core::DumpJson(j);
  ev->frame = std::make_shared<const std::string>(sse::Frame(type, ev->json));
  return ev;
}

EphemeralPtr EphemeralFromOutbox(const std::string& channel, const std::string& type, const std::string& payload) {
  EphemeralPtr ev = ParseEphemeral(payload);
  if (!ev || ev->channel != channel || ev->type != type) return nullptr;
  return ev;
}

}  // namespace evstream::feed
