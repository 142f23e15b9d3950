// evstream.publish, _publish_each and _presence_send (see publish.hpp).
#include <cstring>  // first: PostgreSQL's port.h redefines snprintf
#include <string>
#include <string_view>
#include <vector>

#include "publish.hpp"
#include "evstream/error.hpp"
#include "outbox.hpp"
#include "pg/guard.hpp"
#include "security.hpp"

extern "C" {
#include "funcapi.h"           // ReturnSetInfo
#include "miscadmin.h"         // superuser
#include "utils/builtins.h"    // numeric_out
#include "utils/guc.h"         // GetConfigOption, set_config_option
#include "utils/json.h"        // escape_json
#include "utils/timestamp.h"   // GetCurrentTimestamp, timestamp2tm
#include "utils/tuplestore.h"  // tuplestore_putvalues
#include "utils/uuid.h"        // pg_uuid_t
}

namespace evstream::publish {
namespace {

namespace ss = evstream::sqlstate;
using pg::PgCall;

constexpr int kMaxPayload = 7999;  // an ephemeral event is shorter than 8000 bytes
constexpr size_t kQuoted = 500;    // at most this much of a value is quoted in a message

// At most n bytes of s, never ending inside a UTF-8 sequence (messages stay valid).
std::string Quote(std::string_view s, size_t n = kQuoted) {
  if (s.size() <= n) return std::string(s);
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
  return std::string(s.substr(0, n)) + "...";
}

// publish's channel rule: ^(project|user|channel):[^*]+$
bool ChannelShapeOk(std::string_view c) {
  for (std::string_view prefix : {"project:", "user:", "channel:"}) {
    if (c.substr(0, prefix.size()) == prefix) {
      std::string_view id = c.substr(prefix.size());
      return !id.empty() && id.find('*') == std::string_view::npos;
    }
  }
  return false;
}

bool Reserved(std::string_view type) {
  for (std::string_view r : {"connected", "heartbeat", "reset", "overflow", "reauth", "error", "presence"})
    if (type == r) return true;
  return false;
}

// An event ready for the outbox, and its ephemeralId.
struct Prepared {
  outbox::Row row;
  pg_uuid_t* id = nullptr;
};

// Inside PgCall: n version 4 UUIDs, as gen_random_uuid makes them, from one call of the strong
// random source (each call costs a system call here; a batch needs only one).
pg_uuid_t* RandomUuids(size_t n) {
  auto* u = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t) * Max(n, 1)));
  if (n > 0 && !pg_strong_random(u, sizeof(pg_uuid_t) * n))
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
  for (size_t i = 0; i < n; i++) {
    u[i].data[6] = (u[i].data[6] & 0x0f) | 0x40;
    u[i].data[8] = (u[i].data[8] & 0x3f) | 0x80;
  }
  return u;
}

// Inside PgCall: appends `"key" : ` then the string value (escaped) or null.
void AppendText(StringInfo buf, const char* sep_key, const char* value) {
  appendStringInfoString(buf, sep_key);
  if (value == nullptr) appendStringInfoString(buf, "null");
  else escape_json(buf, value);
}

// Inside PgCall: the frame object, exactly as
//   json_build_object('type', type, 'channel', channel, 'entity', aggregate_type, 'id',
//     aggregate_id, 'data', data::json, 'ephemeral', true, 'ephemeralId', eid, 'createdBy',
//     creator, 'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC',
//     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text
// printed it (keys and values separated by " : ", pairs by ", "; data as jsonb prints it).
char* BuildPayload(const Event* e, const char* creator, const pg_uuid_t* id, int* len) {
  StringInfoData buf;
  initStringInfo(&buf);
  AppendText(&buf, "{\"type\" : ", e->type);
  AppendText(&buf, ", \"channel\" : ", e->channel);
  AppendText(&buf, ", \"entity\" : ", e->entity);
  AppendText(&buf, ", \"id\" : ", e->entity_id);
  appendStringInfoString(&buf, ", \"data\" : ");
  (void)JsonbToCString(&buf, &e->data->root, VARSIZE(e->data));
  appendStringInfoString(&buf, ", \"ephemeral\" : true, \"ephemeralId\" : \"");
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < UUID_LEN; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) appendStringInfoChar(&buf, '-');
    appendStringInfoChar(&buf, kHex[id->data[i] >> 4]);
    appendStringInfoChar(&buf, kHex[id->data[i] & 0x0f]);
  }
  appendStringInfoChar(&buf, '"');
  AppendText(&buf, ", \"createdBy\" : ", creator);
  struct pg_tm tm;
  fsec_t fsec;
  if (timestamp2tm(GetCurrentTimestamp(), nullptr, &tm, &fsec, nullptr, nullptr) != 0)
    ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
  appendStringInfo(&buf, ", \"timestamp\" : \"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"}", tm.tm_year,
                   tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   static_cast<int>(fsec / 1000));
  *len = buf.len;
  return buf.data;
}

// The checks of evstream.publish, in its order, then the payload with ephemeralId `id`.
// Throws Error / PgException.
Prepared Prepare(const Event& e, pg_uuid_t* id) {
  if (e.channel == nullptr) throw Error(ss::kNullValue, "channel must not be null");
  if (!ChannelShapeOk(e.channel))
    throw Error(ss::kInvalidParameter, "channel must be project:<id>, user:<id> or channel:<id>, got \"" +
                                           Quote(e.channel) + "\"");
  if (e.type == nullptr || e.type[0] == '\0') throw Error(ss::kInvalidParameter, "type must not be empty");
  if (Reserved(e.type))
    throw Error(ss::kInvalidParameter, std::string("type is reserved for the stream's own frames: ") + e.type);
  if (e.data == nullptr || !JB_ROOT_IS_OBJECT(e.data))
    throw Error(ss::kInvalidParameter, "data must be a JSON object");
  // The log's rules, for the caller (the role outside this function): one rule, not a copy.
  if (!security::ChannelAllowed(e.channel))
    throw Error(ss::kInsufficientPrivilege, "channel not allowed by the claims: " + Quote(e.channel), "",
                "request.jwt.claims allows user:<sub>, project:<p> for each of projects, and each entry "
                "of channels.");
  std::string creator = security::Creator(e.created_by);

  Prepared p;
  p.id = id;
  int len = 0;
  const char* creator_c = creator.c_str();
  const Event* ep = &e;
  PgCall([&p, ep, creator_c, &len] { p.row.payload = BuildPayload(ep, creator_c, p.id, &len); });
  if (len > kMaxPayload)
    throw Error(ss::kInvalidParameter,
                "ephemeral event is too large: " + std::to_string(len) + " bytes (limit 7999)", "",
                "An ephemeral event (envelope and data) must be shorter than 8000 bytes; store big "
                "payloads with post_event.");
  p.row.channel = e.channel;
  p.row.type = e.type;
  p.row.entity = e.entity;
  p.row.entity_id = e.entity_id;
  return p;
}

// Inside PgCall: `item ->> key` as a palloc'd C string (nullptr for a missing key or JSON null):
// strings unquoted, numbers and booleans as printed, containers as JSON text.
const char* FieldText(JsonbContainer* item, const char* key) {
  if (item == nullptr) return nullptr;
  JsonbValue* v = getKeyJsonValueFromContainer(item, key, strlen(key), nullptr);
  if (v == nullptr) return nullptr;
  switch (v->type) {
    case jbvString: return pnstrdup(v->val.string.val, v->val.string.len);
    case jbvBool: return v->val.boolean ? "true" : "false";
    case jbvNumeric: return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
    case jbvBinary: return JsonbToCString(nullptr, v->val.binary.data, v->val.binary.len);
    default: return nullptr;
  }
}

// Inside PgCall: `item -> key` (nullptr for a missing key).
Jsonb* FieldJsonb(JsonbContainer* item, const char* key) {
  if (item == nullptr) return nullptr;
  JsonbValue* v = getKeyJsonValueFromContainer(item, key, strlen(key), nullptr);
  return v == nullptr ? nullptr : JsonbValueToJsonb(v);
}

// Inside PgCall: request.jwt.claims for the rest of the transaction, as
// set_config('request.jwt.claims', claims, true) sets it (skipped when it already holds it).
void SetClaims(const char* claims) {
  const char* now = GetConfigOption("request.jwt.claims", true, false);
  if (now != nullptr && strcmp(now, claims) == 0) return;
  (void)set_config_option("request.jwt.claims", claims, superuser() ? PGC_SUSET : PGC_USERSET,
                          PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

bool IsArray(Jsonb* j) { return j != nullptr && JB_ROOT_IS_ARRAY(j) && !JB_ROOT_IS_SCALAR(j); }

}  // namespace

Datum Publish(const Event& event) {
  pg_uuid_t* id = nullptr;
  PgCall([&id] { id = RandomUuids(1); });
  Prepared p = Prepare(event, id);
  outbox::Insert({p.row}, outbox::Ring::kWorker);
  return UUIDPGetDatum(p.id);
}

void PublishEach(FunctionCallInfo fcinfo, Jsonb* items, bool with_rows) {
  if (!IsArray(items)) throw Error(ss::kInvalidParameter, "items must be a JSON array");
  uint32 n = JB_ROOT_COUNT(items);
  struct Item {
    const char* claims;
    Event event;
  };
  std::vector<Item> parsed(n);
  Item* out = parsed.data();
  PgCall([items, n, out] {
    for (uint32 i = 0; i < n; i++) {
      JsonbValue* v = getIthJsonbValueFromContainer(&items->root, i);
      // Not an object: every field is NULL (publish then refuses the NULL channel).
      JsonbContainer* c =
          v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data) ? v->val.binary.data : nullptr;
      const char* claims = FieldText(c, "claims");
      out[i].claims = claims ? claims : "";
      out[i].event.channel = FieldText(c, "channel");
      out[i].event.type = FieldText(c, "type");
      out[i].event.data = FieldJsonb(c, "data");
      out[i].event.entity = FieldText(c, "entity");
      out[i].event.entity_id = FieldText(c, "id");
    }
  });
  // Each item under its own claims, checked in order; the first refusal fails the batch (the
  // transaction: nothing is written), as one publish() per item did.
  std::vector<outbox::Row> rows;
  std::vector<pg_uuid_t*> ids;
  rows.reserve(n);
  ids.reserve(n);
  pg_uuid_t* uuids = nullptr;
  PgCall([&uuids, n] { uuids = RandomUuids(n); });
  for (uint32 i = 0; i < n; i++) {
    const char* claims = parsed[i].claims;
    PgCall([claims] { SetClaims(claims); });
    Prepared p = Prepare(parsed[i].event, &uuids[i]);
    rows.push_back(p.row);
    ids.push_back(p.id);
  }
  // evstreamd's one transaction per round trip: the doorbell rings at its commit, no worker hop.
  std::vector<int64> outbox_ids(rows.size());
  outbox::Insert(rows, outbox::Ring::kInline, outbox_ids.data());
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  pg_uuid_t* const* id = ids.data();
  const int64* oid = outbox_ids.data();
  const outbox::Row* row = rows.data();
  size_t count = ids.size();
  PgCall([rsinfo, id, oid, row, count, with_rows] {
    for (size_t i = 0; i < count; i++) {
      Datum values[3] = {UUIDPGetDatum(id[i]), Int64GetDatum(oid[i]), (Datum)0};
      bool nulls[3] = {false, false, false};
      if (with_rows) values[2] = CStringGetTextDatum(row[i].payload);
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
  });
}

void PresenceSend(Jsonb* messages) {
  if (!IsArray(messages)) throw Error(ss::kInvalidParameter, "messages must be a JSON array");
  uint32 n = JB_ROOT_COUNT(messages);
  std::vector<outbox::Row> rows(n);
  outbox::Row* out = rows.data();
  bool all_objects = true;
  PgCall([messages, n, out, &all_objects] {
    for (uint32 i = 0; i < n && all_objects; i++) {
      JsonbValue* v = getIthJsonbValueFromContainer(&messages->root, i);
      if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data)) {
        all_objects = false;
        break;
      }
      out[i].presence = true;
      // m::text: the object as jsonb prints it.
      out[i].payload = JsonbToCString(nullptr, v->val.binary.data, v->val.binary.len);
    }
  });
  if (!all_objects) throw Error(ss::kInvalidParameter, "every presence message must be a JSON object");
  outbox::Insert(rows, outbox::Ring::kInline);
}

}  // namespace evstream::publish
