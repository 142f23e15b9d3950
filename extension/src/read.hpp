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
void Stream(FunctionCallInfo fcinfo, Datum aggregate_type, Datum aggregate_id, int32 after_version);

}  // namespace evstream::read
