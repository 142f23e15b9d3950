// post_events: unpack a JSON array into append requests (one SQL pass over the array), then
// append them through the same path as post_event, inside the caller's transaction.
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "append.hpp"
#include "batch.hpp"
#include "evstream/error.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"    // JSONBOID
#include "funcapi.h"            // ReturnSetInfo
#include "utils/builtins.h"     // text_to_cstring
#include "utils/fmgrprotos.h"   // uuid_in
#include "utils/tuplestore.h"   // tuplestore_puttuple
}

namespace evstream::batch {
namespace {

namespace ss = evstream::sqlstate;

constexpr size_t kMaxBatch = 10000;

pg::KeptPlan g_unpack(
    "SELECT jsonb_typeof(e), e->>'channel', e->>'aggregate_type', e->>'aggregate_id',"
    "       e->>'event_type', e->'data', e->'metadata', e->>'idempotency_key',"
    "       e->>'expected_version', jsonb_typeof(e->'expected_version'),"
    "       e->>'correlation_id', e->>'causation_id', e->'display', e->>'created_by',"
    "       (SELECT string_agg(k, ', ') FROM jsonb_object_keys("
    "          CASE WHEN jsonb_typeof(e) = 'object' THEN e ELSE '{}' END) AS k"
    "         WHERE k <> ALL (ARRAY['channel','aggregate_type','aggregate_id','event_type',"
    "           'data','metadata','idempotency_key','expected_version','correlation_id',"
    "           'causation_id','display','created_by']))"
    "  FROM jsonb_array_elements($1) WITH ORDINALITY AS t(e, n) ORDER BY n",
    {JSONBOID});

const char* TextCol(uint64_t row, int col) {
  bool isnull = false;
  Datum d = pg::ResultValue(row, col, &isnull);
  if (isnull) return nullptr;
  const char* out = nullptr;
  pg::PgCall([&] { out = text_to_cstring(DatumGetTextPP(d)); });
  return out;
}

Jsonb* JsonCol(uint64_t row, int col) {
  bool isnull = false;
  Datum d = pg::ResultValue(row, col, &isnull);
  if (isnull) return nullptr;
  Jsonb* out = nullptr;
  pg::PgCall([&] { out = DatumGetJsonbP(d); });
  // A JSON null counts as absent.
  if (JB_ROOT_IS_SCALAR(out)) {
    JsonbValue v;
    bool is_null = false;
    pg::PgCall([&] { is_null = JsonbExtractScalar(&out->root, &v) && v.type == jbvNull; });
    if (is_null) return nullptr;
  }
  return out;
}

// Parses a UUID text field, naming the field when it is not one.
bool UuidCol(uint64_t row, int col, const std::string& field, Datum* out) {
  const char* text = TextCol(row, col);
  if (text == nullptr) return false;
  try {
    pg::PgCall([&] { *out = DirectFunctionCall1(uuid_in, CStringGetDatum(text)); });
  } catch (const pg::PgException&) {
    throw Error(ss::kInvalidParameter, field + " is not a valid uuid: \"" + text + "\"");
  }
  return true;
}

}  // namespace

void PostEvents(FunctionCallInfo fcinfo, Jsonb* events) {
  if (events == nullptr) throw Error(ss::kNullValue, "events must not be null");
  if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
    throw Error(ss::kInvalidParameter, "events must be a JSON array of event objects");
  if (JB_ROOT_COUNT(events) > kMaxBatch)
    throw Error(ss::kInvalidParameter, "events has more than 10000 entries");

  pg::SpiSession spi;
  Datum arg = JsonbPGetDatum(events);
  uint64_t n = g_unpack.Run(&arg, nullptr, true);
  SPITupleTable* table = SPI_tuptable;  // kept: later SPI calls must not clobber it
  std::vector<append::Request> requests(n);
  for (uint64_t i = 0; i < n; i++) {
    SPI_tuptable = table;
    append::Request& r = requests[i];
    r.label = "events[" + std::to_string(i) + "].";
    const char* kind = TextCol(i, 1);
    if (std::string(kind) != "object")
      throw Error(ss::kInvalidParameter, "events[" + std::to_string(i) + "] must be a JSON object");
    if (const char* unknown = TextCol(i, 15))
      throw Error(ss::kInvalidParameter,
                  "events[" + std::to_string(i) + "] has unknown keys: " + unknown);
    r.channel = TextCol(i, 2);
    r.aggregate_type = TextCol(i, 3);
    r.aggregate_id = TextCol(i, 4);
    r.event_type = TextCol(i, 5);
    r.data = JsonCol(i, 6);
    if (r.data == nullptr) {
      Datum empty = 0;
      pg::PgCall([&] { empty = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")); });
      r.data = DatumGetJsonbP(empty);
    }
    r.metadata = JsonCol(i, 7);
    r.idempotency_key = TextCol(i, 8);
    if (const char* ev = TextCol(i, 9)) {
      const char* ev_kind = TextCol(i, 10);
      char* end = nullptr;
      errno = 0;
      long v = std::strtol(ev, &end, 10);
      if (std::string(ev_kind) != "number" || *end != '\0' || errno != 0 || v < 0 ||
          v > INT32_MAX)
        throw Error(ss::kInvalidParameter, r.label + "expected_version must be a whole number 0 or more");
      r.has_expected_version = true;
      r.expected_version = static_cast<int32>(v);
    }
    r.has_correlation_id = UuidCol(i, 11, r.label + "correlation_id", &r.correlation_id);
    r.has_causation_id = UuidCol(i, 12, r.label + "causation_id", &r.causation_id);
    r.display = JsonCol(i, 13);
    r.created_by = TextCol(i, 14);
  }

  std::vector<Datum> rows = append::Append(requests);
  pg::PgCall([&] {
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    for (Datum row : rows) {
      HeapTupleHeader header = DatumGetHeapTupleHeader(row);
      HeapTupleData tuple;
      tuple.t_len = HeapTupleHeaderGetDatumLength(header);
      ItemPointerSetInvalid(&tuple.t_self);
      tuple.t_tableOid = InvalidOid;
      tuple.t_data = header;
      tuplestore_puttuple(rsinfo->setResult, &tuple);
    }
  });
  spi.Finish();
}

}  // namespace evstream::batch
