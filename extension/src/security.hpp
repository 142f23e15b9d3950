// Who may read and write which channels (JWT claims, see evstream/claims.hpp), and the one
// sanctioned way to remove events: erase_aggregate.
#pragma once

#include <string>
#include <vector>

#include "append.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"  // FunctionCallInfo
}

namespace evstream::security {

// The caller: the role in effect outside any SECURITY DEFINER function (the login role, or the
// role chosen with SET ROLE). evstream's definer functions check this role, while PostgreSQL
// checks EXECUTE against the current user: a call needs both.
Oid Caller();

// The one identity rule (evstream._creator): the created_by to store for the caller.
// Members of evstream_service may pass any valid created_by (default: user:<sub> of the claims,
// else system); everyone else writes as user:<sub> of request.jwt.claims and gets 42501 for any
// other value or when the claims carry no sub. 22023 for a malformed created_by.
std::string Creator(const char* created_by, const std::string& label = "");

// The channel rule (evstream.channel_allowed): members of evstream_admin or evstream_daemon (and
// superusers) may use every channel; a role with rows in evstream.channel_grants (directly or through a role it
// belongs to) exactly the channels granted, whatever its claims say; anyone else the channels
// its claims (request.jwt.claims) allow.
bool ChannelAllowed(const char* channel);

// Consumers: the caller may read and move a consumer owned by `owner` when it has the
// privileges of that role, or is an admin.
bool MayUseConsumer(Oid owner);

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
