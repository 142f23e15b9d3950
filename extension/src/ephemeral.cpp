// SQL entry points of the ephemeral outbox (sql/parts/40_realtime.sql): publish, the daemon's
// batch publish and presence messages, the reader, the doorbell for committed publications, and
// the next transaction id that readers use as their gap horizon. Each reads its arguments with
// PostgreSQL macros, then runs the C++ body through InvokeCpp (the one boundary guard).
#include "doorbell.hpp"
#include "outbox.hpp"
#include "pg/guard.hpp"
#include "publish.hpp"

extern "C" {
#include "access/transam.h"  // ReadNextFullTransactionId
#include "fmgr.h"            // PG_FUNCTION_ARGS
#include "funcapi.h"         // InitMaterializedSRF
#include "utils/builtins.h"  // text_to_cstring
#include "utils/xid8.h"      // FullTransactionIdGetDatum

PG_FUNCTION_INFO_V1(evstream_publish);
PG_FUNCTION_INFO_V1(evstream_publish_each);
PG_FUNCTION_INFO_V1(evstream_publish_batch);
PG_FUNCTION_INFO_V1(evstream_presence_send);
PG_FUNCTION_INFO_V1(evstream_ephemeral_read);
PG_FUNCTION_INFO_V1(evstream_ring_ephemeral);
PG_FUNCTION_INFO_V1(evstream_next_xid);
}

namespace {

const char* OptText(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

Jsonb* OptJsonb(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? nullptr : PG_GETARG_JSONB_P(n);
}

}  // namespace

// evstream.publish(channel, type, data, aggregate_type, aggregate_id, created_by) -> uuid
extern "C" Datum evstream_publish(PG_FUNCTION_ARGS) {
  evstream::publish::Event e;
  e.channel = OptText(fcinfo, 0);
  e.type = OptText(fcinfo, 1);
  e.data = OptJsonb(fcinfo, 2);
  e.entity = OptText(fcinfo, 3);
  e.entity_id = OptText(fcinfo, 4);
  e.created_by = OptText(fcinfo, 5);
  return evstream::pg::InvokeCpp([&]() -> Datum { return evstream::publish::Publish(e); });
}

// evstream._publish_each(items jsonb) -> SETOF uuid
extern "C" Datum evstream_publish_each(PG_FUNCTION_ARGS) {
  Jsonb* items = OptJsonb(fcinfo, 0);
  InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::publish::PublishEach(fcinfo, items);
    return (Datum)0;
  });
}

// evstream._publish_batch(items jsonb) -> TABLE (ephemeral_id uuid, outbox_id bigint, payload text)
extern "C" Datum evstream_publish_batch(PG_FUNCTION_ARGS) {
  Jsonb* items = OptJsonb(fcinfo, 0);
  InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::publish::PublishEach(fcinfo, items, true);
    return (Datum)0;
  });
}

// evstream._presence_send(messages jsonb) -> void
extern "C" Datum evstream_presence_send(PG_FUNCTION_ARGS) {
  Jsonb* messages = OptJsonb(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::publish::PresenceSend(messages);
    PG_RETURN_VOID();
  });
}

// evstream._ephemeral_read(after bigint, gaps bigint[], max_count integer) -> TABLE (...)
// A NULL after reads no rows (only the horizon); a NULL max_count means the most (10000).
extern "C" Datum evstream_ephemeral_read(PG_FUNCTION_ARGS) {
  bool after_null = PG_ARGISNULL(0);
  int64 after = after_null ? 0 : PG_GETARG_INT64(0);
  bool gaps_null = PG_ARGISNULL(1);
  Datum gaps = gaps_null ? (Datum)0 : PG_GETARG_DATUM(1);
  int32 max_count = PG_ARGISNULL(2) ? 10000 : PG_GETARG_INT32(2);
  InitMaterializedSRF(fcinfo, 0);
  return evstream::pg::InvokeCpp([&]() -> Datum {
    evstream::outbox::Read(fcinfo, after, after_null, gaps, gaps_null, max_count);
    return (Datum)0;
  });
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
