// Ephemeral events and presence messages into evstream.ephemeral_outbox: the bodies of
// evstream.publish, evstream._publish_each and evstream._presence_send
// (sql/parts/40_realtime.sql). publish applies the log's own rules through the security module
// (security::ChannelAllowed for the channel, security::Creator for created_by, both for the
// caller outside the definer function); the payload text is byte for byte what
// json_build_object made before, so the 8000-byte limit means what it always meant.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"         // FunctionCallInfo
#include "utils/jsonb.h"  // Jsonb
}

namespace evstream::publish {

// evstream.publish's arguments: palloc'd C strings / Jsonb, nullptr for SQL NULL.
struct Event {
  const char* channel = nullptr;
  const char* type = nullptr;
  Jsonb* data = nullptr;
  const char* entity = nullptr;     // aggregate_type
  const char* entity_id = nullptr;  // aggregate_id
  const char* created_by = nullptr;
};

// evstream.publish: checks, writes one outbox row, returns the ephemeralId (a uuid Datum).
// 22004/22023 for bad input, 42501 when the channel or identity rule refuses.
Datum Publish(const Event& event);

// evstream._publish_each(items): each item ({"claims","channel","type","data","entity","id"})
// under its own claims (request.jwt.claims, set for the transaction as before), in order; one
// outbox insert for the whole batch. Returns the ephemeralIds into the materialized result;
// with `with_rows` (evstream._publish_batch) each result row is (ephemeral_id, outbox_id,
// payload): the outbox row as written, so that the publishing evstreamd hands it to its own
// subscribers without reading it back.
void PublishEach(FunctionCallInfo fcinfo, Jsonb* items, bool with_rows = false);

// evstream._presence_send(messages): a JSON array of objects, one outbox row each, in order.
void PresenceSend(Jsonb* messages);

}  // namespace evstream::publish
