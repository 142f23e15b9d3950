// SQL entry points behind the ephemeral outbox (sql/parts/40_realtime.sql): the doorbell for
// committed publications, and the next transaction id that readers use as their gap horizon.
#include "doorbell.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/transam.h"  // ReadNextFullTransactionId
#include "fmgr.h"            // PG_FUNCTION_ARGS
#include "utils/xid8.h"      // FullTransactionIdGetDatum

PG_FUNCTION_INFO_V1(evstream_ring_ephemeral);
PG_FUNCTION_INFO_V1(evstream_next_xid);
}

// evstream._ring_ephemeral(): this transaction wrote to the outbox; at commit, NOTIFY
// evstream_ephemeral (empty payload) tells every evstreamd to read it. Through the doorbell
// worker, so the publishing transaction never takes the cluster-wide notify lock.
extern "C" Datum evstream_ring_ephemeral(PG_FUNCTION_ARGS) {
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::pg::PgCall([] { evstream::doorbell::MarkPublished(); });
    PG_RETURN_VOID();
  });
}

// evstream._next_xid(): the next transaction id to be assigned. Every transaction that already
// has an id has one below it, so once a snapshot's xmin reaches it, all of them have ended.
extern "C" Datum evstream_next_xid(PG_FUNCTION_ARGS) {
  return FullTransactionIdGetDatum(ReadNextFullTransactionId());
}
