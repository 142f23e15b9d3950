// evstream.ephemeral_outbox from C++: the one writer (publish, _publish_each and _presence_send
// insert through it) and the reader behind evstream._ephemeral_read.
//
// The writer inserts straight into the heap and the table's indexes (no SQL, no executor
// start-up per row): the table is evstream's own, with no triggers, rules or row-level
// security, and only the functions that call this module can write it. It assigns the
// transaction id before taking any row id (readers rely on it to know when a gap is final) and
// rings the evstream_ephemeral doorbell at commit.
#pragma once

#include <vector>

extern "C" {
#include "postgres.h"
#include "fmgr.h"  // FunctionCallInfo
}

namespace evstream::outbox {

// One row. Strings are palloc'd C strings; nullptr is SQL NULL (only for the routing columns).
struct Row {
  bool presence = false;  // kind 'presence' (else 'event')
  const char* channel = nullptr;
  const char* type = nullptr;
  const char* entity = nullptr;
  const char* entity_id = nullptr;
  const char* payload = nullptr;
};

// How the evstream_ephemeral doorbell rings for the rows: through the doorbell worker after
// commit (any number of concurrent writers), or inside the transaction (evstreamd's batches).
enum class Ring { kWorker, kInline };

// Inserts the rows in order (ascending ids) and marks the transaction for the doorbell.
// Nothing happens for no rows. With `ids` (rows.size() entries), each row's id is written there.
// Throws PgException.
void Insert(const std::vector<Row>& rows, Ring ring, int64* ids = nullptr);

// evstream._ephemeral_read(after, gaps, max_count) into the function's materialized result:
// the horizon row (this snapshot's xmin, the next transaction id), then the rows among `gaps`
// at or below `after`, then up to max_count (1..10000) rows above `after`, in id order. A NULL
// `after` reads no rows, a NULL `gaps` no gap rows (as the SQL body did before).
void Read(FunctionCallInfo fcinfo, int64 after, bool after_null, Datum gaps, bool gaps_null,
          int32 max_count);

// Registers the relcache callback that forgets the table's cached OIDs (from _PG_init).
void Init();

}  // namespace evstream::outbox
