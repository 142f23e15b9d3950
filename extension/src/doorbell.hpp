// The doorbell: after a transaction that appended events commits, one coalesced NOTIFY on
// channel "evstream" tells listeners to read the log. The NOTIFY is sent by a per-database
// background worker woken at commit, so the writing transaction never takes the cluster-wide
// notify lock (see BENCHMARKS.md). evstream.doorbell = worker | inline | off.
#pragma once

extern "C" {
#include "postgres.h"
#include "storage/lwlock.h"  // LWLock
}

namespace evstream::doorbell {

inline constexpr const char* kChannel = "evstream";
// Rung after commits that published ephemeral events (evstream.publish, presence messages): a
// wake-up only; listeners read evstream.ephemeral_outbox, never the payload.
inline constexpr const char* kEphemeralChannel = "evstream_ephemeral";

enum Mode { kWorker = 0, kInline = 1, kOff = 2 };

extern int g_mode;          // GUC evstream.doorbell
extern int g_idle_exit_ms;  // GUC evstream.doorbell_idle_exit

// Called from _PG_init when loaded by shared_preload_libraries.
void Init();
bool Preloaded();
// The lock that makes a batch's positions consecutive: singles take it shared around their
// nextval, batches exclusive.
LWLock* PositionLock();
// Notifications sent by doorbell workers since server start.
uint64 Rings();
// Record that the current transaction appended (rings at commit).
void MarkAppended();
// Record that the current transaction wrote to the ephemeral outbox (rings evstream_ephemeral at
// commit, through the worker like MarkAppended; inline when not preloaded). A commit that only
// published rings inside itself when no other commit of the database rings or counts on the
// worker at that moment (one at a time per database: the notify lock is never queued on).
void MarkPublished();
// The same, rung inside the transaction (NOTIFY at its commit, no worker hop): for evstreamd's
// batches, one transaction per round trip per daemon, as its pg_notify was before the outbox —
// the cluster-wide notify lock is then taken once per batch, never per writer.
void MarkPublishedInline();

}  // namespace evstream::doorbell
