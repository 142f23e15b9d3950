// SQL entry points for state from events (issue 3): the event-type catalog, rebuild, state_at,
// channel authorisation, erasure, and the triggers behind them. Same pattern as entry.cpp:
// arguments read with PostgreSQL macros, the C++ body run through InvokeCpp.
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include "catalog.hpp"
#include "evstream/error.hpp"
#include "pg/guard.hpp"
#include "rebuild.hpp"
#include "security.hpp"

extern "C" {
#include "fmgr.h"               // PG_FUNCTION_ARGS
#include "commands/trigger.h"   // TriggerData, CALLED_AS_TRIGGER
#include "utils/builtins.h"     // text_to_cstring
#include "utils/jsonb.h"        // PG_GETARG_JSONB_P
#include "utils/rel.h"          // RelationGetRelid

PG_FUNCTION_INFO_V1(evstream_register_event_type);
PG_FUNCTION_INFO_V1(evstream_rebuild);
PG_FUNCTION_INFO_V1(evstream_state_at);
PG_FUNCTION_INFO_V1(evstream_channel_allowed);
PG_FUNCTION_INFO_V1(evstream_erase_aggregate);
PG_FUNCTION_INFO_V1(evstream_creator);
PG_FUNCTION_INFO_V1(evstream_caller);
PG_FUNCTION_INFO_V1(evstream_may_use_consumer);
PG_FUNCTION_INFO_V1(evstream_refuse_change);
PG_FUNCTION_INFO_V1(evstream_catalog_changed);
}

namespace {

const char* OptText(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

Jsonb* OptJsonb(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : PG_GETARG_JSONB_P(n);
}

}  // namespace

extern "C" Datum evstream_register_event_type(PG_FUNCTION_ARGS) {
  const char* event_type = OptText(fcinfo, 0);
  Jsonb* schema = OptJsonb(fcinfo, 1);
  const char* description = OptText(fcinfo, 2);
  Jsonb* example = OptJsonb(fcinfo, 3);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::catalog::RegisterEventType(event_type, schema, description, example);
    PG_RETURN_VOID();
  });
}

extern "C" Datum evstream_rebuild(PG_FUNCTION_ARGS) {
  const char* aggregate_type = OptText(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return Int64GetDatum(evstream::rebuild::Rebuild(aggregate_type));
  });
}

extern "C" Datum evstream_state_at(PG_FUNCTION_ARGS) {
  const char* aggregate_type = OptText(fcinfo, 0);
  const char* aggregate_id = OptText(fcinfo, 1);
  int32 version = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
  TimestampTz at = PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3);
  const int32* version_p = PG_ARGISNULL(2) ? nullptr : &version;
  const TimestampTz* at_p = PG_ARGISNULL(3) ? nullptr : &at;
  Jsonb* result = nullptr;
  Datum d = evstream::pg::InvokeCpp([&]() -> Datum {
    result = evstream::rebuild::StateAt(aggregate_type, aggregate_id, version_p, at_p);
    return (Datum)0;
  });
  (void)d;
  if (result == nullptr) PG_RETURN_NULL();
  PG_RETURN_JSONB_P(result);
}

extern "C" Datum evstream_channel_allowed(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  const char* channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return BoolGetDatum(evstream::security::ChannelAllowed(channel));
  });
}

extern "C" Datum evstream_creator(PG_FUNCTION_ARGS) {
  const char* created_by = OptText(fcinfo, 0);
  const char* result = nullptr;
  Datum d = evstream::pg::InvokeCpp([&]() -> Datum {
    std::string creator = evstream::security::Creator(created_by);
    result = pstrdup(creator.c_str());
    return (Datum)0;
  });
  (void)d;
  PG_RETURN_TEXT_P(cstring_to_text(result));
}

// The caller's role (outside any SECURITY DEFINER function), for evstream's own SQL functions.
extern "C" Datum evstream_caller(PG_FUNCTION_ARGS) {
  return ObjectIdGetDatum(evstream::security::Caller());
}

extern "C" Datum evstream_may_use_consumer(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  Oid owner = PG_GETARG_OID(0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return BoolGetDatum(evstream::security::MayUseConsumer(owner));
  });
}

extern "C" Datum evstream_erase_aggregate(PG_FUNCTION_ARGS) {
  const char* aggregate_type = OptText(fcinfo, 0);
  const char* aggregate_id = OptText(fcinfo, 1);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return Int64GetDatum(evstream::security::EraseAggregate(aggregate_type, aggregate_id));
  });
}

// Plain C: raises its error directly (no C++ object is alive here).
extern "C" Datum evstream_refuse_change(PG_FUNCTION_ARGS) {
  return evstream::security::RefuseChange(fcinfo);
}

// Statement trigger on the catalog tables: every backend drops its cached schemas and
// projection/state-machine configuration (at its next transaction; this one at once).
extern "C" Datum evstream_catalog_changed(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "evstream: _catalog_changed must be called as a trigger");
  Oid relid = RelationGetRelid(reinterpret_cast<TriggerData*>(fcinfo->context)->tg_relation);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::catalog::CatalogChanged(relid);
    return PointerGetDatum(nullptr);
  });
}
