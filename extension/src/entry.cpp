// SQL-callable entry points and module initialisation. Each entry point reads its arguments
// with PostgreSQL macros, then runs the C++ body through InvokeCpp (the one boundary guard).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include <string>
#include <vector>

#include "append.hpp"
#include "batch.hpp"
#include "catalog.hpp"
#include "doorbell.hpp"
#include "evstream/error.hpp"
#include "horizon.hpp"
#include "outbox.hpp"
#include "pg/guard.hpp"
#include "pg/search_path.hpp"
#include "read.hpp"
#include "security.hpp"

extern "C" {
#include "fmgr.h"               // PG_FUNCTION_ARGS
#include "funcapi.h"            // InitMaterializedSRF
#include "miscadmin.h"          // process_shared_preload_libraries_in_progress
#include "utils/builtins.h"     // text_to_cstring
#include "utils/guc.h"          // DefineCustomEnumVariable, MarkGUCPrefixReserved
#include "utils/timestamp.h"    // TimestampTzGetDatum
#include "utils/tuplestore.h"   // tuplestore_putvalues

PG_MODULE_MAGIC;

void _PG_init(void);
PG_FUNCTION_INFO_V1(evstream_require_preload);
PG_FUNCTION_INFO_V1(evstream_post_event);
PG_FUNCTION_INFO_V1(evstream_post_events);
PG_FUNCTION_INFO_V1(evstream_append_paths);
PG_FUNCTION_INFO_V1(evstream_read_after);
PG_FUNCTION_INFO_V1(evstream_stream);
PG_FUNCTION_INFO_V1(evstream_doorbell_rings);
PG_FUNCTION_INFO_V1(evstream_read_horizon);
PG_FUNCTION_INFO_V1(evstream_log_tail);
PG_FUNCTION_INFO_V1(evstream_held_back);
PG_FUNCTION_INFO_V1(evstream_horizon_holders);
}

namespace {

const struct config_enum_entry kDoorbellModes[] = {
    {"worker", evstream::doorbell::kWorker, false},
    {"inline", evstream::doorbell::kInline, false},
    {"off", evstream::doorbell::kOff, false},
    {nullptr, 0, false},
};

const char* OptText(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

Jsonb* OptJsonb(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : PG_GETARG_JSONB_P(n);
}

}  // namespace

void _PG_init(void) {
  DefineCustomEnumVariable(
      "evstream.doorbell", "How committed appends ring the NOTIFY doorbell.",
      "worker: a background worker sends one coalesced NOTIFY after commits (default); "
      "inline: NOTIFY inside the writing transaction; off: no doorbell.",
      &evstream::doorbell::g_mode, evstream::doorbell::kWorker, kDoorbellModes, PGC_USERSET, 0,
      nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "evstream.doorbell_idle_exit", "Idle time after which a doorbell worker exits.", nullptr,
      &evstream::doorbell::g_idle_exit_ms, 2000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
      nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "evstream.require_registered_types", "Refuse events whose type is not registered.",
      "When on, post_event and post_events refuse an event_type that has no row in "
      "evstream.event_types (see evstream.register_event_type).",
      &evstream::catalog::g_require_registered_types, false, PGC_SUSET, 0, nullptr, nullptr,
      nullptr);
  MarkGUCPrefixReserved("evstream");
  evstream::catalog::Init();
  evstream::security::Init();
  evstream::outbox::Init();
  if (process_shared_preload_libraries_in_progress) {
    evstream::doorbell::Init();
    evstream::horizon::Init();  // after the doorbell: its commit callback runs first
  }
}

extern "C" Datum evstream_require_preload(PG_FUNCTION_ARGS) {
  return evstream::pg::InvokeCpp([&]() -> Datum {
    if (!evstream::doorbell::Preloaded())
      throw evstream::Error("55000", "evstream must be loaded through shared_preload_libraries",
                            "The doorbell worker and the position lock live in shared memory.",
                            "Add evstream to shared_preload_libraries in postgresql.conf and "
                            "restart PostgreSQL.");
    PG_RETURN_VOID();
  });
}

extern "C" Datum evstream_post_event(PG_FUNCTION_ARGS) {
  evstream::append::Request r;
  r.channel = OptText(fcinfo, 0);
  r.aggregate_type = OptText(fcinfo, 1);
  r.aggregate_id = OptText(fcinfo, 2);
  r.event_type = OptText(fcinfo, 3);
  r.data = OptJsonb(fcinfo, 4);
  r.metadata = OptJsonb(fcinfo, 5);
  r.idempotency_key = OptText(fcinfo, 6);
  r.has_expected_version = !PG_ARGISNULL(7);
  r.expected_version = r.has_expected_version ? PG_GETARG_INT32(7) : 0;
  r.has_correlation_id = !PG_ARGISNULL(8);
  r.correlation_id = r.has_correlation_id ? PG_GETARG_DATUM(8) : (Datum)0;
  r.has_causation_id = !PG_ARGISNULL(9);
  r.causation_id = r.has_causation_id ? PG_GETARG_DATUM(9) : (Datum)0;
  r.display = OptJsonb(fcinfo, 10);
  r.created_by = OptText(fcinfo, 11);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::pg::FixedSearchPath path;
    std::vector<evstream::append::Request> one{r};
    Datum row = evstream::append::Append(one).front();
    path.Done();
    return row;
  });
}

extern "C" Datum evstream_post_events(PG_FUNCTION_ARGS) {
  Jsonb* events = OptJsonb(fcinfo, 0);
  InitMaterializedSRF(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::pg::FixedSearchPath path;
    evstream::batch::PostEvents(fcinfo, events);
    path.Done();
    return (Datum)0;
  });
}

// evstream._append_paths(): how this backend's appends wrote their rows so far.
extern "C" Datum evstream_append_paths(PG_FUNCTION_ARGS) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("_append_paths must return a record")));
  desc = BlessTupleDesc(desc);
  evstream::append::WritePaths paths = evstream::append::Paths();
  Datum values[2] = {Int64GetDatum(paths.direct), Int64GetDatum(paths.through_sql)};
  bool nulls[2] = {false, false};
  return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

extern "C" Datum evstream_read_after(PG_FUNCTION_ARGS) {
  int64 after = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
  int32 max_count = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
  bool channels_null = PG_ARGISNULL(2);
  Datum channels = channels_null ? (Datum)0 : PG_GETARG_DATUM(2);
  InitMaterializedSRF(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::read::ReadAfter(fcinfo, after, max_count, channels, channels_null);
    return (Datum)0;
  });
}

extern "C" Datum evstream_stream(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("aggregate_type and aggregate_id must not be null")));
  Datum aggregate_type = PG_GETARG_DATUM(0);
  Datum aggregate_id = PG_GETARG_DATUM(1);
  int32 after_version = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
  InitMaterializedSRF(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::read::Stream(fcinfo, aggregate_type, aggregate_id, after_version);
    return (Datum)0;
  });
}

extern "C" Datum evstream_doorbell_rings(PG_FUNCTION_ARGS) {
  return evstream::pg::InvokeCpp([&]() -> Datum {
    if (!evstream::doorbell::Preloaded())
      throw evstream::Error("55000", "evstream is not loaded through shared_preload_libraries");
    return Int64GetDatum(static_cast<int64>(evstream::doorbell::Rings()));
  });
}

// evstream._read_horizon(after_key): the one definition of what a reader may read, for SQL
// readers (consume); call it, then read in a later statement (a later snapshot).
extern "C" Datum evstream_read_horizon(PG_FUNCTION_ARGS) {
  int64 after_key = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return Int64GetDatum(evstream::read::Horizon(after_key));
  });
}

// evstream.log_tail(): the last readable event (no row when none is).
extern "C" Datum evstream_log_tail(PG_FUNCTION_ARGS) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("log_tail must return a record")));
  desc = BlessTupleDesc(desc);
  InitMaterializedSRF(fcinfo, 0);
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  int64 position = 0, order_key = 0;
  bool found = false;
  Datum r = evstream::pg::InvokeCpp([&]() -> Datum {
    found = evstream::read::Tail(&position, &order_key);
    return (Datum)0;
  });
  if (found) {
    Datum values[2] = {Int64GetDatum(position), Int64GetDatum(order_key)};
    bool nulls[2] = {false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return r;
}

extern "C" Datum evstream_held_back(PG_FUNCTION_ARGS) {
  return evstream::pg::InvokeCpp([&]() -> Datum {
    return BoolGetDatum(evstream::read::HeldBack());
  });
}

// evstream._horizon_holders(): the horizon, the next key, and one row per open appending
// transaction of this database (pid, key, since), smallest key first; one row with null pid
// when there is none. evstream.horizon() joins it with pg_stat_activity.
extern "C" Datum evstream_horizon_holders(PG_FUNCTION_ARGS) {
  InitMaterializedSRF(fcinfo, 0);
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  evstream::horizon::State* state = nullptr;
  Datum r = evstream::pg::InvokeCpp([&]() -> Datum {
    state = new evstream::horizon::State(evstream::horizon::CurrentState());
    return (Datum)0;
  });
  size_t n = state->holders.size();
  for (size_t i = 0; i < (n == 0 ? 1 : n); i++) {
    Datum values[5] = {Int64GetDatum(state->horizon), Int64GetDatum(state->next_key), 0, 0, 0};
    bool nulls[5] = {false, false, n == 0, n == 0, n == 0};
    if (n > 0) {
      values[2] = Int32GetDatum(state->holders[i].pid);
      values[3] = Int64GetDatum(state->holders[i].key);
      values[4] = TimestampTzGetDatum(state->holders[i].since);
    }
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  delete state;
  return r;
}
