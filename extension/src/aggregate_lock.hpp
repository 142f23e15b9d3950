// The per-aggregate append lock. Appends to one aggregate (and its erasure) serialise on a
// transaction-level lock on the aggregate: the holder reads the aggregate's current version from
// the log (events_aggregate_version_key) and appends the next one; the next appender gets the
// lock once the holder's transaction has ended, and then sees its events.
//
// The lock is a heavyweight advisory lock in a key space of evstream's own (pg_locks shows
// locktype 'advisory' with objsubid 17750): classid/objid hold a 64-bit hash of
// (aggregate_type, aggregate_id), so two aggregates may share a lock (they then serialise
// needlessly, never wrongly). pg_advisory_lock calls use objsubid 1 and 2 and never collide.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace evstream::aggregate_lock {

inline constexpr uint16 kKeySpace = 17750;

// Takes the lock on (aggregate_type, aggregate_id) until the transaction ends. Waits behind the
// current holder (deadlocks are detected and reported by PostgreSQL, 40P01). Throws PgException.
void Lock(const char* aggregate_type, const char* aggregate_id);

}  // namespace evstream::aggregate_lock
