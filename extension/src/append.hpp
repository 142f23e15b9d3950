// Appending events: the one code path behind post_event and post_events.
#pragma once

#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"  // Jsonb
}

namespace evstream::append {

// One event to append. Strings are palloc'd C strings or nullptr when SQL NULL.
struct Request {
  std::string label;  // how errors name this event's fields: "" or "events[3]."
  const char* channel = nullptr;
  const char* aggregate_type = nullptr;
  const char* aggregate_id = nullptr;
  const char* event_type = nullptr;
  Jsonb* data = nullptr;
  Jsonb* metadata = nullptr;  // nullptr = {}
  Jsonb* display = nullptr;   // nullptr = SQL NULL
  const char* idempotency_key = nullptr;
  bool has_expected_version = false;
  int32 expected_version = 0;
  bool has_correlation_id = false;
  Datum correlation_id = 0;
  bool has_causation_id = false;
  Datum causation_id = 0;
  const char* created_by = nullptr;
};

// Validates, deduplicates by idempotency key, checks and bumps aggregate versions, allocates
// consecutive positions and inserts. Returns one evstream.events composite Datum per request,
// in order, allocated in the caller's memory context. Throws evstream::Error or PgException.
std::vector<Datum> Append(std::vector<Request>& requests);

// Takes the aggregate's write lock (until the transaction ends; see aggregate_lock.hpp) and
// returns its current version (0: no events). Under REPEATABLE READ / SERIALIZABLE, when the
// transaction's snapshot does not show the aggregate as it now is (appended to or erased since
// the snapshot was taken), throws 40001: writing on that stale view would skip or strand
// versions. Used by every writer of an aggregate (appends, erasure). Throws Error/PgException.
// How this backend's appends wrote their rows so far: directly (the table exactly as evstream
// made it) or through an SQL INSERT (see pg/row_insert.hpp).
struct WritePaths {
  int64 direct = 0;
  int64 through_sql = 0;
};
WritePaths Paths();

int32 LockAggregate(const char* aggregate_type, const char* aggregate_id, const std::string& label);

}  // namespace evstream::append
