// Gap-free reading: read_after (the global order) and stream (one aggregate).
#include <cstdint>

#include "evstream/error.hpp"
#include "pg/spi.hpp"
#include "read.hpp"

extern "C" {
#include "catalog/pg_type.h"  // INT8OID, TEXTARRAYOID
#include "funcapi.h"          // InitMaterializedSRF
#include "utils/tuplestore.h" // tuplestore_puttuple
}

namespace evstream::read {
namespace {

using pg::KeptPlan;

// Only rows whose writing transaction is older than every running one are returned: no row can
// ever appear below that line again, so (tx, position) is a total order every reader agrees on
// and a reader that resumes after the last row it saw skips nothing.
KeptPlan g_from_start(
    "SELECT e.* FROM evstream.events e"
    " WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())"
    "   AND ($2::text[] IS NULL OR e.channel = ANY ($2))"
    " ORDER BY e.tx, e.position LIMIT $1",
    {INT4OID, TEXTARRAYOID});
KeptPlan g_anchor("SELECT tx FROM evstream.events WHERE position = $1", {INT8OID});
KeptPlan g_after(
    "SELECT e.* FROM evstream.events e"
    " WHERE (e.tx, e.position) > ($4::xid8, $1)"
    "   AND e.tx < pg_snapshot_xmin(pg_current_snapshot())"
    "   AND ($3::text[] IS NULL OR e.channel = ANY ($3))"
    " ORDER BY e.tx, e.position LIMIT $2",
    {INT8OID, INT4OID, TEXTARRAYOID, XID8OID});
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

}  // namespace

void ReadAfter(FunctionCallInfo fcinfo, int64 after, int32 max_count, Datum channels,
               bool channels_null) {
  if (after < 0) throw Error(sqlstate::kInvalidParameter, "after_position must be 0 or more");
  if (max_count <= 0 || max_count > 100000)
    throw Error(sqlstate::kInvalidParameter, "max_count must be between 1 and 100000");
  pg::SpiSession spi;
  if (after == 0) {
    Datum args[2] = {Int32GetDatum(max_count), channels};
    char nulls[2] = {' ', channels_null ? 'n' : ' '};
    RunInto(g_from_start, fcinfo, args, nulls);
  } else {
    Datum pos = Int64GetDatum(after);
    if (g_anchor.Run(&pos, nullptr, true, 1) == 0)
      throw Error(sqlstate::kUnknownPosition,
                  "position " + std::to_string(after) + " is not in the log",
                  "It was never written, or its event was erased.",
                  "Start again from position 0 or from a position you have received.");
    bool isnull = false;
    Datum tx = pg::ResultValue(0, 1, &isnull);
    Datum args[4] = {pos, Int32GetDatum(max_count), channels, tx};
    char nulls[4] = {' ', ' ', channels_null ? 'n' : ' ', ' '};
    RunInto(g_after, fcinfo, args, nulls);
  }
  spi.Finish();
}

void Stream(FunctionCallInfo fcinfo, Datum aggregate_type, Datum aggregate_id, int32 after_version) {
  pg::SpiSession spi;
  Datum args[3] = {aggregate_type, aggregate_id, Int32GetDatum(after_version)};
  RunInto(g_stream, fcinfo, args, nullptr);
  spi.Finish();
}

}  // namespace evstream::read
