// Reading the log in the gap-free order (see read.cpp).
#pragma once

#include <string>

extern "C" {
#include "postgres.h"
#include "fmgr.h"  // FunctionCallInfo
}

namespace evstream::read {

// Both fill the materialized SRF result of fcinfo (InitMaterializedSRF already called).
void ReadAfter(FunctionCallInfo fcinfo, int64 after, int32 max_count, Datum channels,
               bool channels_null);
// The last readable event (false on a log with none readable).
bool Tail(int64* position, int64* order_key);
// The horizon for this transaction's reads after `after_key` (evstream._read_horizon).
int64 Horizon(int64 after_key);
// Whether committed events wait at or above the horizon.
bool HeldBack();
void Stream(FunctionCallInfo fcinfo, Datum aggregate_type, Datum aggregate_id, int32 after_version);

}  // namespace evstream::read
