// Gap-free reading: read_after (the global order), the tail and held-back checks evstreamd
// uses, and stream (one aggregate). Every read of the global order goes through
// horizon::ReadHorizon, then a snapshot taken after it.
#include <cstdint>

#include "evstream/error.hpp"
#include "horizon.hpp"
#include "pg/spi.hpp"
#include "read.hpp"

extern "C" {
#include "catalog/pg_type.h"  // INT8OID, TEXTARRAYOID
#include "funcapi.h"          // InitMaterializedSRF
#include "utils/snapmgr.h"    // PopActiveSnapshot
#include "utils/tuplestore.h" // tuplestore_puttuple
}

namespace evstream::read {
namespace {

using pg::KeptPlan;

// Only rows below the delivery horizon (see horizon.hpp) are returned: no row can ever appear
// below it again, so (order_key, position) is a total order every reader agrees on and a
// reader that resumes after the last row it saw skips nothing. The horizon is computed first,
// the snapshot the rows are read with taken after it. Generic plans: every one of these walks
// events_order_idx with its bounds as index conditions whatever the values, but a custom plan
// is estimated ~50 times cheaper than the generic one, so the plan cache would re-plan every
// call (a quarter of read_after's time for a batch of 1000).
KeptPlan g_from_start(
    "SELECT e.* FROM evstream.events e"
    " WHERE e.order_key < $3"
    "   AND ($2::text[] IS NULL OR e.channel = ANY ($2))"
    " ORDER BY e.order_key, e.position LIMIT $1",
    {INT4OID, TEXTARRAYOID, INT8OID}, pg::Planning::kGeneric);
KeptPlan g_anchor("SELECT order_key FROM evstream.events WHERE position = $1", {INT8OID});
KeptPlan g_after(
    "SELECT e.* FROM evstream.events e"
    " WHERE (e.order_key, e.position) > ($4, $1)"
    "   AND e.order_key < $5"
    "   AND ($3::text[] IS NULL OR e.channel = ANY ($3))"
    " ORDER BY e.order_key, e.position LIMIT $2",
    {INT8OID, INT4OID, TEXTARRAYOID, INT8OID, INT8OID}, pg::Planning::kGeneric);
// The last readable event: where a live reader that wants only new events starts.
KeptPlan g_tail(
    "SELECT e.position, e.order_key FROM evstream.events e WHERE e.order_key < $1"
    " ORDER BY e.order_key DESC, e.position DESC LIMIT 1",
    {INT8OID}, pg::Planning::kGeneric);
// Whether committed events wait at or above the horizon. The ORDER BY ... LIMIT 1 makes the
// walk of events_order_idx the generic plan's choice: as EXISTS (...) it chose a sequential scan
// of the whole log (the bound unknown, a third of the rows estimated to match), which the feed
// paid after every read.
KeptPlan g_held_back(
    "SELECT e.order_key FROM evstream.events e WHERE e.order_key >= $1"
    " ORDER BY e.order_key LIMIT 1",
    {INT8OID}, pg::Planning::kGeneric);
KeptPlan g_stream(
    "SELECT e.* FROM evstream.events e"
    " WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 AND e.version > $3"
    " ORDER BY e.version",
    {TEXTOID, TEXTOID, INT4OID});

// Runs `plan` with its rows going straight into the function's result tuplestore.
uint64_t RunInto(KeptPlan& plan, FunctionCallInfo fcinfo, const Datum* args, const char* nulls) {
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  return plan.RunInto(args, nulls, true, rsinfo->setResult, rsinfo->econtext->ecxt_per_query_memory);
}

// Runs `run` with the snapshot a read below a horizon just computed must use.
template <typename Fn>
void WithReadSnapshot(Fn&& run) {
  horizon::PushReadSnapshot();
  try {
    run();
  } catch (...) {
    pg::PgCall([] { PopActiveSnapshot(); });
    throw;
  }
  pg::PgCall([] { PopActiveSnapshot(); });
}

}  // namespace

void ReadAfter(FunctionCallInfo fcinfo, int64 after, int32 max_count, Datum channels,
               bool channels_null) {
  if (after < 0) throw Error(sqlstate::kInvalidParameter, "after_position must be 0 or more");
  if (max_count <= 0 || max_count > 100000)
    throw Error(sqlstate::kInvalidParameter, "max_count must be between 1 and 100000");
  pg::SpiSession spi;
  if (after == 0) {
    int64 h = horizon::ReadHorizon(0);
    Datum args[3] = {Int32GetDatum(max_count), channels, Int64GetDatum(h)};
    char nulls[3] = {' ', channels_null ? 'n' : ' ', ' '};
    WithReadSnapshot([&] { RunInto(g_from_start, fcinfo, args, nulls); });
  } else {
    Datum pos = Int64GetDatum(after);
    if (g_anchor.Run(&pos, nullptr, true, 1) == 0)
      throw Error(sqlstate::kUnknownPosition,
                  "position " + std::to_string(after) + " is not in the log",
                  "It was never written, or its event was erased.",
                  "Start again from position 0 or from a position you have received.");
    bool isnull = false;
    int64 key = DatumGetInt64(pg::ResultValue(0, 1, &isnull));
    int64 h = horizon::ReadHorizon(key);
    Datum args[5] = {pos, Int32GetDatum(max_count), channels, Int64GetDatum(key), Int64GetDatum(h)};
    char nulls[5] = {' ', ' ', channels_null ? 'n' : ' ', ' ', ' '};
    WithReadSnapshot([&] { RunInto(g_after, fcinfo, args, nulls); });
  }
  spi.Finish();
}

bool Tail(int64* position, int64* order_key) {
  pg::SpiSession spi;
  int64 h = horizon::ReadHorizon(0);
  Datum arg = Int64GetDatum(h);
  uint64_t n = 0;
  WithReadSnapshot([&] { n = g_tail.Run(&arg, nullptr, true, 1); });
  if (n == 1) {
    bool isnull = false;
    *position = DatumGetInt64(pg::ResultValue(0, 1, &isnull));
    *order_key = DatumGetInt64(pg::ResultValue(0, 2, &isnull));
  }
  spi.Finish();
  return n == 1;
}

int64 Horizon(int64 after_key) {
  pg::SpiSession spi;
  int64 h = horizon::ReadHorizon(after_key);
  spi.Finish();
  return h;
}

bool HeldBack() {
  pg::SpiSession spi;
  Datum arg = Int64GetDatum(horizon::ReadHorizon(0));
  bool held = false;
  WithReadSnapshot([&] { held = g_held_back.Run(&arg, nullptr, true, 1) == 1; });
  spi.Finish();
  return held;
}

void Stream(FunctionCallInfo fcinfo, Datum aggregate_type, Datum aggregate_id, int32 after_version) {
  pg::SpiSession spi;
  Datum args[3] = {aggregate_type, aggregate_id, Int32GetDatum(after_version)};
  RunInto(g_stream, fcinfo, args, nullptr);
  spi.Finish();
}

}  // namespace evstream::read
