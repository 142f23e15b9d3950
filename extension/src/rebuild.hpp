// Replaying the log: rebuild (truncate a projection target and fold every event of the
// aggregate type into it again) and state_at (fold one aggregate's events up to a version or a
// time into JSON, touching no table).
#pragma once

#include <cstdint>

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"      // Jsonb
#include "utils/timestamp.h"  // TimestampTz
}

namespace evstream::rebuild {

// Returns the number of events replayed. Within the caller's transaction.
int64 Rebuild(const char* aggregate_type);

// nullptr when the aggregate has no event in range. at_version/at_time: nullptr = no bound.
Jsonb* StateAt(const char* aggregate_type, const char* aggregate_id, const int32* at_version,
               const TimestampTz* at_time);

}  // namespace evstream::rebuild
