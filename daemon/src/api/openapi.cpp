#include "api/openapi.hpp"

#include <nlohmann/json.hpp>

#include "core/json_out.hpp"

namespace evstream::api {
namespace {
using J = nlohmann::ordered_json;

J Ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }
J JsonBody(const J& schema) { return {{"application/json", {{"schema", schema}}}}; }
J Resp(const std::string& description, const J& schema) {
  return {{"description", description}, {"content", JsonBody(schema)}};
}
J Err(const std::string& description) { return Resp(description, Ref("Error")); }
J Obj(std::initializer_list<std::pair<const char*, J>> props, std::vector<std::string> required) {
  J p = J::object();
  for (const auto& [k, v] : props) p[k] = v;
  return {{"type", "object"}, {"required", required}, {"properties", p}};
}
J Str() { return {{"type", "string"}}; }
J Int() { return {{"type", "integer"}}; }
J Arr(const J& items) { return {{"type", "array"}, {"items", items}}; }
J Any() { return J::object(); }
J QueryParam(const std::string& name, const J& schema, bool required, const std::string& description) {
  return {{"name", name}, {"in", "query"}, {"required", required}, {"schema", schema}, {"description", description}};
}
J PathParam(const std::string& name) {
  return {{"name", name}, {"in", "path"}, {"required", true}, {"schema", Str()}};
}

J Build() {
  J schemas = {
      {"Error", Obj({{"error", Str()}, {"message", Str()}, {"field", Str()}, {"offset", Int()}}, {"error", "message"})},
      {"Event", Obj({{"type", Str()}, {"channel", Str()}, {"entity", Str()}, {"id", Str()}, {"version", Int()},
                     {"position", Int()}, {"eventId", Str()}, {"data", Any()}, {"metadata", Any()},
                     {"display", Any()}, {"timestamp", Str()}, {"correlationId", Any()}, {"causationId", Any()},
                     {"createdBy", Str()}},
                    {"type", "channel", "entity", "id", "version", "position", "eventId", "data", "timestamp",
                     "createdBy"})},
      {"NewEvent", Obj({{"channel", Str()}, {"aggregate_type", Str()}, {"aggregate_id", Str()}, {"event_type", Str()},
                        {"data", Any()}, {"metadata", Any()}, {"display", Any()}, {"expected_version", Int()},
                        {"correlation_id", Str()}, {"causation_id", Str()}},
                       {"channel", "aggregate_type", "aggregate_id", "event_type"})},
      {"Ephemeral", Obj({{"channel", Str()}, {"type", Str()}, {"data", Any()}, {"entity", Str()}, {"id", Str()}},
                        {"channel", "type"})},
  };
  J auth401 = Err("missing or invalid token");
  J paths = J::object();
  paths["/healthz"]["get"] = {
      {"summary", "liveness and database state"},
      {"security", J::array()},
      {"responses", {{"200", Resp("ok", Obj({{"status", Str()}, {"position", Int()}}, {"status"}))},
                     {"503", Resp("database unreachable or feed starting", Obj({{"status", Str()}, {"reason", Str()}}, {"status", "reason"}))}}}};
  paths["/metrics"]["get"] = {{"summary", "Prometheus metrics"},
                              {"security", J::array()},
                              {"responses", {{"200", {{"description", "text exposition format"},
                                                      {"content", {{"text/plain", {{"schema", Str()}}}}}}}}}};
  paths["/api/events/stream"]["get"] = {
      {"summary", "Server-Sent Events: stored events (id: position) and ephemeral events (no id:)"},
      {"parameters", {QueryParam("channel", Str(), false, "repeatable"), QueryParam("topic", Str(), false, "repeatable"),
                      QueryParam("lastEventId", Str(), false, "resume after this position"),
                      QueryParam("batch_ms", Int(), false, "debounce")}},
      {"responses", {{"200", {{"description", "event stream"}, {"content", {{"text/event-stream", {{"schema", Str()}}}}}}},
                     {"400", Err("bad parameter")}, {"401", auth401}, {"403", Err("channel not allowed")}}}};
  paths["/api/events"]["post"] = {
      {"summary", "append an event (evstream.post_event)"},
      {"parameters", {{{"name", "Idempotency-Key"}, {"in", "header"}, {"required", false}, {"schema", Str()}}}},
      {"requestBody", {{"required", true}, {"content", JsonBody(Ref("NewEvent"))}}},
      {"responses", {{"201", Resp("appended (or the original event of an idempotent retry)", Ref("Event"))},
                     {"400", Err("malformed")}, {"401", auth401}, {"403", Err("channel not allowed")},
                     {"409", Err("version or idempotency conflict")}, {"413", Err("body too large")},
                     {"422", Err("schema-invalid data or illegal transition")}}}};
  paths["/api/events"]["get"] = {
      {"summary", "history in the gap-free order"},
      {"parameters", {QueryParam("channel", Str(), false, "repeatable"), QueryParam("after", Int(), false, "position"),
                      QueryParam("limit", Int(), false, "1..1000"), QueryParam("topic", Str(), false, "repeatable")}},
      {"responses", {{"200", Resp("events", Obj({{"events", Arr(Ref("Event"))}, {"next", Int()}, {"channels", Arr(Str())}},
                                               {"events", "next", "channels"}))},
                     {"400", Err("bad parameter")}, {"401", auth401}, {"403", Err("channel not allowed")},
                     {"410", Err("position not in the log")}}}};
  paths["/api/events/{eventId}"]["get"] = {
      {"summary", "one stored event"},
      {"parameters", {PathParam("eventId")}},
      {"responses", {{"200", Resp("the event", Ref("Event"))}, {"400", Err("not a UUID")}, {"401", auth401},
                     {"404", Err("missing or not readable with this token")}}}};
  paths["/api/streams/{aggregateType}/{aggregateId}"]["get"] = {
      {"summary", "one aggregate's events in version order"},
      {"parameters", {PathParam("aggregateType"), PathParam("aggregateId"),
                      QueryParam("after_version", Int(), false, "")}},
      {"responses", {{"200", Resp("events", Obj({{"entity", Str()}, {"id", Str()}, {"version", Int()}, {"events", Arr(Ref("Event"))}},
                                               {"entity", "id", "version", "events"}))},
                     {"400", Err("bad path")}, {"401", auth401}, {"403", Err("not readable")}}}};
  paths["/api/publish"]["post"] = {
      {"summary", "ephemeral event: current subscribers on every instance, never stored (at most once, no replay, no id:)"},
      {"requestBody", {{"required", true}, {"content", JsonBody(Ref("Ephemeral"))}}},
      {"responses", {{"202", Resp("published", Obj({{"published", {{"type", "boolean"}}}, {"ephemeralId", Str()},
                                                    {"channel", Str()}, {"type", Str()}, {"coalesced", Int()}},
                                                   {"published", "ephemeralId", "channel", "type", "coalesced"}))},
                     {"400", Err("malformed")}, {"401", auth401}, {"403", Err("channel not allowed")},
                     {"413", Err("NOTIFY payload would be 8000 bytes or more")}}}};
  paths["/api/presence"]["get"] = {
      {"summary", "current members of a channel across instances"},
      {"parameters", {QueryParam("channel", Str(), true, "exact channel")}},
      {"responses", {{"200", Resp("members", Obj({{"channel", Str()}, {"members", Arr(Obj({{"userId", Str()}}, {"userId"}))},
                                                 {"count", Int()}}, {"channel", "members", "count"}))},
                     {"400", Err("no channel")}, {"401", auth401}, {"403", Err("channel not allowed")}}}};
  paths["/api/event-types"]["get"] = {
      {"summary", "the event-type catalog"},
      {"responses", {{"200", Resp("catalog", Obj({{"eventTypes", Arr(Obj({{"eventType", Str()}, {"schema", Any()},
                                                                          {"description", Any()}, {"example", Any()},
                                                                          {"registeredAt", Str()}, {"updatedAt", Str()}},
                                                                         {"eventType"}))}},
                                                 {"eventTypes"}))},
                     {"400", Err("request text not UTF-8")}, {"401", auth401}}}};
  paths["/api/stats"]["get"] = {
      {"summary", "per event type counts and first/last times, on the channels the token allows"},
      {"parameters", {QueryParam("channel", Str(), false, "repeatable")}},
      {"responses", {{"200", Resp("stats", Obj({{"eventTypes", Arr(Obj({{"eventType", Str()}, {"events", Int()},
                                                                        {"firstAt", Str()}, {"lastAt", Str()}},
                                                                       {"eventType", "events", "firstAt", "lastAt"}))},
                                               {"total", Int()}, {"channels", Arr(Str())}},
                                              {"eventTypes", "total", "channels"}))},
                     {"400", Err("bad parameter")}, {"401", auth401}, {"403", Err("channel not allowed")}}}};
  J worker403 = Err("token without roles: [\"worker\"]");
  paths["/api/consumers/{name}/claim"]["post"] = {
      {"summary", "next batch after the consumer's checkpoint (not advanced until ack)"},
      {"parameters", {PathParam("name")}},
      {"requestBody", {{"required", false}, {"content", JsonBody(Obj({{"max_count", Int()}, {"member", Int()}, {"size", Int()}}, {}))}}},
      {"responses", {{"200", Resp("batch", Obj({{"events", Arr(Ref("Event"))}, {"next", Int()}}, {"events", "next"}))},
                     {"400", Err("bad body")}, {"401", auth401}, {"403", worker403}}}};
  paths["/api/consumers/{name}/ack"]["post"] = {
      {"summary", "advance the checkpoint to position"},
      {"parameters", {PathParam("name")}},
      {"requestBody", {{"required", true}, {"content", JsonBody(Obj({{"position", Int()}, {"member", Int()}}, {"position"}))}}},
      {"responses", {{"200", Resp("acked", Obj({{"acked", Int()}}, {"acked"}))}, {"400", Err("bad body")},
                     {"401", auth401}, {"403", worker403}}}};
  paths["/api/consumers/{name}/fail"]["post"] = {
      {"summary", "record a failure and advance past position"},
      {"parameters", {PathParam("name")}},
      {"requestBody", {{"required", true}, {"content", JsonBody(Obj({{"position", Int()}, {"error", Str()}, {"member", Int()}}, {"position", "error"}))}}},
      {"responses", {{"200", Resp("failed", Obj({{"failed", Int()}}, {"failed"}))}, {"400", Err("bad body")},
                     {"401", auth401}, {"403", worker403}}}};
  paths["/api/openapi.json"]["get"] = {
      {"summary", "this document"},
      {"security", J::array()},
      {"responses", {{"200", Resp("OpenAPI 3.0", Obj({{"openapi", Str()}, {"info", Any()}, {"paths", Any()}}, {"openapi", "info", "paths"}))}}}};
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "evstreamd"}, {"version", EVSTREAMD_VERSION},
                    {"description", "Event log over HTTP and Server-Sent Events; tokens: JWT (Bearer header, "
                                    "evstream_token cookie or access_token query); claims rule: sub -> user:<sub>, "
                                    "projects[] -> project:<p>, channels[] (trailing * = prefix)."}}},
          {"security", J::array({{{"bearer", J::array()}}})},
          {"paths", paths},
          {"components", {{"schemas", schemas},
                          {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}}}}}}};
}
}  // namespace

const std::string& OpenApiJson() {
  static const std::string doc = core::DumpJson(Build());
  return doc;
}

}  // namespace evstream::api
