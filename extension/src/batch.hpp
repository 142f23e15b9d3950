// post_events: a JSON array of events appended all or nothing.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"         // FunctionCallInfo
#include "utils/jsonb.h"  // Jsonb
}

namespace evstream::batch {

// Fills the materialized SRF result of fcinfo with the appended (or replayed) events.
void PostEvents(FunctionCallInfo fcinfo, Jsonb* events);

}  // namespace evstream::batch
