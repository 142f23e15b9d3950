// The delivery horizon: which events of the log are readable, held back only by transactions
// that have appended to it (see horizon.cpp for the design, README "Gap-free reading").
//
// A transaction gets an order key at its first append: taken under its database's horizon lock
// from a counter that only grows (reserved in blocks from the WAL-logged sequence
// evstream.order_key_blocks, so no key is handed out twice or below one handed out, across
// restarts and crashes), and entered in a shared-memory registry of open appenders. It leaves
// the registry once its commit is visible (or at abort). Readers compute, under the same lock,
//     horizon = min(next key, smallest key of an open appender of this database)
// and read events with order_key < horizon ordered by (order_key, position).
#pragma once

#include <cstdint>
#include <vector>

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"  // TimestampTz
}

namespace evstream::horizon {

// Keys handed out per reservation of evstream.order_key_blocks (block b: [b*kBlock, (b+1)*kBlock)).
inline constexpr int64 kBlock = 1024;

// Called from _PG_init when loaded by shared_preload_libraries (after doorbell::Init: the
// registry's commit callback must run before the doorbell's, and PostgreSQL calls the newest
// callback first).
void Init();

// The current transaction's order key, registering it as an open appender at its first call
// (C++ exceptions on failure; nothing registered then). Inside an SPI session.
int64 KeyForAppend();

// The horizon a reader may read below, for the current transaction's snapshot. Computed from
// the registry; under REPEATABLE READ / SERIALIZABLE it is lowered to the smallest key of a
// committed event (at or above `after_key`) that the transaction's snapshot cannot see. After
// it returns, take the snapshot for the read (ReadSnapshot). Inside an SPI session.
int64 ReadHorizon(int64 after_key);

// Pushes the snapshot a read below a horizon just computed must use (a new one under READ
// COMMITTED, the transaction's otherwise); pop with PopActiveSnapshot.
void PushReadSnapshot();

// What holds the horizon back, for evstream.horizon() and the daemon's health detail.
struct Holder {
  int pid;
  int64 key;
  TimestampTz since;  // when it took its key
};
struct State {
  int64 horizon;
  int64 next_key;
  std::vector<Holder> holders;  // open appenders of this database, smallest key first
};
State CurrentState();

}  // namespace evstream::horizon
