// Who may read and write which channels (JWT claims, see evstream/claims.hpp), and the one
// sanctioned way to remove events: erase_aggregate.
#pragma once

#include <vector>

#include "append.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"  // FunctionCallInfo
}

namespace evstream::security {

// True when the caller's claims (request.jwt.claims) allow `channel`, or the caller is a
// member of evstream_admin.
bool ChannelAllowed(const char* channel);

// post_event / post_events: when row-level security applies to the caller on evstream.events,
// every request's channel must be allowed by the caller's claims (else EV005).
void CheckWriteChannels(const std::vector<append::Request>& requests);

// evstream.erase_aggregate: deletes the aggregate's events (through the immutability trigger's
// one bypass), its aggregate row and projected row, and records the erasure. Returns the
// number of events erased.
int64 EraseAggregate(const char* aggregate_type, const char* aggregate_id);

// The immutability trigger on evstream.events.
Datum RefuseChange(FunctionCallInfo fcinfo);

// Register the transaction callback that clears the erase bypass (from _PG_init).
void Init();

}  // namespace evstream::security
