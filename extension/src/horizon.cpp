// The delivery horizon (see horizon.hpp).
//
// Shared memory: one DbState per database that uses evstream (its key counter and its lock),
// and one Entry per PGPROC (the order key of that backend's open appending transaction, 0 when
// none). Registration takes the key and publishes the entry under the database's lock held
// exclusively; readers scan under the same lock held shared, so a reader sees either the entry
// or a next key above it. An entry is cleared (atomically, no lock needed: clearing can only
// raise the horizon) in the commit callback, which PostgreSQL runs after the commit became
// visible to new snapshots (ProcArrayEndTransaction), or at abort; a backend that exits clears
// its entry in on_shmem_exit; a crashed backend restarts the cluster and shared memory with it.
//
// Durability: keys are reserved in blocks from the sequence evstream.order_key_blocks (WAL
// flushed at each reservation), and a database's counter is anchored, once per server start,
// above both that sequence and the largest key in the log. So a key is never handed out twice or
// below one handed out, whatever crashed.
#include "horizon.hpp"

#include <algorithm>
#include <string>

#include "evstream/error.hpp"
#include "pg/guard.hpp"
#include "pg/spi.hpp"
#include "pg/user.hpp"

extern "C" {
#include "access/xact.h"           // RegisterXactCallback, IsolationUsesXactSnapshot
#include "access/xlog.h"           // XLogFlush, GetXLogInsertRecPtr, RecoveryInProgress
#include "access/xlog_internal.h"  // XLogSegmentOffset, SizeOfXLogLongPHD, SizeOfXLogShortPHD
#include "catalog/namespace.h"     // get_namespace_oid
#include "catalog/pg_authid_d.h"   // BOOTSTRAP_SUPERUSERID
#include "catalog/pg_type.h"       // INT8OID
#include "commands/sequence.h"     // nextval_internal
#include "miscadmin.h"             // MyDatabaseId, MyProcPid
#include "port/atomics.h"          // pg_atomic_uint64
#include "storage/ipc.h"           // shmem_request_hook, on_shmem_exit
#include "storage/lwlock.h"        // LWLockAcquire
#include "storage/proc.h"          // MyProc, NUM_AUXILIARY_PROCS
#include "storage/shmem.h"         // ShmemInitStruct
#include "storage/spin.h"          // slock_t
#include "utils/builtins.h"        // pg_current_snapshot
#include "utils/fmgrprotos.h"      // setval_oid
#include "utils/lsyscache.h"       // get_relname_relid
#include "utils/snapmgr.h"         // PushActiveSnapshot, GetLatestSnapshot
#include "utils/syscache.h"        // SearchSysCacheExists1
#include "utils/timestamp.h"       // GetCurrentTimestamp
#include "access/twophase.h"       // max_prepared_xacts
}

namespace evstream::horizon {
namespace {

constexpr int kMaxDatabases = 128;
constexpr Oid kPgSnapshotOid = 5038;  // pg_snapshot

struct DbState {
  Oid dbid;               // InvalidOid: free
  bool anchored;          // next_key is known (set once per server start)
  int64 next_key;         // the key the next registration gets
  int64 reserved_until;   // keys below this are backed by a reserved block
};

struct Entry {
  pg_atomic_uint64 key;   // 0: no open appending transaction
  int db;                 // index into dbs
  int pid;
  TimestampTz since;
};

struct Registry {
  slock_t mutex;          // guards dbs[].dbid (claiming and freeing a database's slot)
  LWLockPadded* locks;    // one per database slot: the horizon lock
  int nentries;
  DbState dbs[kMaxDatabases];
  Entry entries[FLEXIBLE_ARRAY_MEMBER];
};

Registry* g_reg = nullptr;
shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;

// Per backend.
int g_db = -1;            // this database's slot
int64 g_key = 0;          // the current transaction's key, 0 when it has not appended
bool g_exit_hook = false;

int EntryCount() { return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts; }

Size RegistrySize() {
  return add_size(offsetof(Registry, entries), mul_size(sizeof(Entry), EntryCount()));
}

void OnShmemRequest() {
  if (g_prev_request) g_prev_request();
  RequestAddinShmemSpace(RegistrySize());
  RequestNamedLWLockTranche("evstream_horizon", kMaxDatabases);
}

void OnShmemStartup() {
  if (g_prev_startup) g_prev_startup();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  g_reg = static_cast<Registry*>(ShmemInitStruct("evstream_horizon", RegistrySize(), &found));
  if (!found) {
    memset(g_reg, 0, RegistrySize());
    SpinLockInit(&g_reg->mutex);
    g_reg->locks = GetNamedLWLockTranche("evstream_horizon");
    g_reg->nentries = EntryCount();
    for (int i = 0; i < g_reg->nentries; i++) pg_atomic_init_u64(&g_reg->entries[i].key, 0);
  }
  LWLockRelease(AddinShmemInitLock);
}

LWLock* Lock(int db) { return &g_reg->locks[db].lock; }

Entry* MyEntry() { return &g_reg->entries[MyProc->pgprocno]; }

// Clears this backend's entry: its transaction has ended (commit visible, or aborted).
void Clear() {
  if (g_key == 0) return;
  pg_memory_barrier();  // the commit's ProcArray update before the entry disappears
  pg_atomic_write_u64(&MyEntry()->key, 0);
  g_key = 0;
}

void OnExit(int, Datum) { Clear(); }

void OnXact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_PREPARE:
      if (g_key != 0)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("cannot PREPARE a transaction that has appended events to evstream"),
                 errdetail("Its events would hold back every later event of the log until "
                           "COMMIT PREPARED, and their doorbell would be lost."),
                 errhint("Append in a transaction that commits directly.")));
      break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      Clear();
      break;
    default:
      break;
  }
}

// This database's slot, claimed on first use. Slots of dropped databases are reclaimed when
// the table is full.
int DbIndex() {
  if (g_db >= 0) return g_db;
  for (int attempt = 0; attempt < 2; attempt++) {
    int idx = -1;
    SpinLockAcquire(&g_reg->mutex);
    for (int i = 0; i < kMaxDatabases && idx < 0; i++)
      if (g_reg->dbs[i].dbid == MyDatabaseId) idx = i;
    for (int i = 0; i < kMaxDatabases && idx < 0; i++) {
      if (g_reg->dbs[i].dbid == InvalidOid) {
        idx = i;
        g_reg->dbs[i] = DbState{MyDatabaseId, false, 0, 0};
      }
    }
    SpinLockRelease(&g_reg->mutex);
    if (idx >= 0) return g_db = idx;
    // Full: free the slots of databases that no longer exist (no backend can be in them).
    for (int i = 0; i < kMaxDatabases; i++) {
      Oid dbid = g_reg->dbs[i].dbid;
      bool exists = true;
      pg::PgCall([&] { exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbid)); });
      if (exists) continue;
      SpinLockAcquire(&g_reg->mutex);
      if (g_reg->dbs[i].dbid == dbid) g_reg->dbs[i] = DbState{InvalidOid, false, 0, 0};
      SpinLockRelease(&g_reg->mutex);
    }
  }
  throw Error("53000", "too many databases use evstream (at most " + std::to_string(kMaxDatabases) + ")");
}

Oid BlockSequence() {
  Oid seq = InvalidOid;
  pg::PgCall([&] {
    seq = get_relname_relid("order_key_blocks", get_namespace_oid("evstream", false));
    if (!OidIsValid(seq)) elog(ERROR, "evstream: sequence evstream.order_key_blocks is missing");
  });
  return seq;
}

// Every name qualified: the anchor runs as the bootstrap superuser (it must see the whole log
// whatever the caller's row-level security).
pg::KeptPlan g_anchor(
    "SELECT (SELECT s.last_value FROM evstream.order_key_blocks s),"
    "       (SELECT pg_catalog.max(e.order_key) FROM evstream.events e)",
    {});

// Once per server start and database: the counter starts above every key the sequence ever
// reserved and every key in the log.
void Anchor(int db) {
  LWLockAcquire(Lock(db), LW_SHARED);
  bool anchored = g_reg->dbs[db].anchored;
  LWLockRelease(Lock(db));
  if (anchored) return;
  int64 anchor = 1;
  pg::RunAs(BOOTSTRAP_SUPERUSERID, [&] {
    g_anchor.Run(nullptr, nullptr, true, 1);
    bool isnull = false;
    Datum last = pg::ResultValue(0, 1, &isnull);
    if (!isnull) anchor = std::max(anchor, (DatumGetInt64(last) + 1) * kBlock);
    Datum max_key = pg::ResultValue(0, 2, &isnull);
    if (!isnull) anchor = std::max(anchor, DatumGetInt64(max_key) + 1);
  });
  LWLockAcquire(Lock(db), LW_EXCLUSIVE);
  DbState* d = &g_reg->dbs[db];
  if (!d->anchored) {
    d->next_key = d->reserved_until = anchor;
    d->anchored = true;
  }
  LWLockRelease(Lock(db));
}

// The end of all WAL inserted so far, as a position XLogFlush can reach. The insert position
// names where the next record would start: at the start of a page that is past the page's
// header, which nothing has been written into yet, so flushing to it fails with "xlog flush
// request ... is not satisfied" (seen under load: a 500 from POST /api/events). Every record
// inserted so far ends at or before the page boundary, so flush to that instead.
XLogRecPtr InsertedWalEnd() {
  XLogRecPtr p = GetXLogInsertRecPtr();
  if (XLogSegmentOffset(p, wal_segment_size) == SizeOfXLogLongPHD)
    return p - SizeOfXLogLongPHD;
  if (p % XLOG_BLCKSZ == SizeOfXLogShortPHD)
    return p - SizeOfXLogShortPHD;
  return p;
}

// Reserves a block of keys above `floor` (no lock held: nextval may do I/O or fail) and makes
// the reservation durable before any key of it is handed out.
int64 ReserveBlock(int64 floor) {
  Oid seq = BlockSequence();
  int64 block = 0;
  pg::PgCall([&] {
    block = nextval_internal(seq, false);
    if ((block + 1) * kBlock <= floor) {
      // The log is ahead of the sequence (restored or converted data): move the sequence up.
      DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seq), Int64GetDatum(floor / kBlock));
      block = nextval_internal(seq, false);
    }
    XLogFlush(InsertedWalEnd());
  });
  return block;
}

int64 ComputeHorizon(int db) {
  LWLockAcquire(Lock(db), LW_SHARED);
  int64 h = g_reg->dbs[db].next_key;
  for (int i = 0; i < g_reg->nentries; i++) {
    Entry* e = &g_reg->entries[i];
    if (e->db != db) continue;
    int64 key = static_cast<int64>(pg_atomic_read_u64(&e->key));
    if (key != 0 && key < h) h = key;
  }
  LWLockRelease(Lock(db));
  return h;
}

// Under REPEATABLE READ / SERIALIZABLE the read uses the transaction's snapshot, older than the
// horizon just computed: stop below the first committed event it cannot see.
pg::KeptPlan g_invisible(
    "SELECT pg_catalog.min(e.order_key) FROM evstream.events e"
    " WHERE e.order_key >= $1 AND e.order_key < $2"
    "   AND NOT pg_catalog.pg_visible_in_snapshot(e.tx, $3)",
    {INT8OID, INT8OID, kPgSnapshotOid});

void RequirePrimary() {
  if (RecoveryInProgress())
    throw Error("55000", "evstream cannot compute the delivery horizon on a standby",
                "The registry of open appending transactions lives in the primary's shared memory.",
                "Read the log (read_after, consume, evstreamd) from the primary; evstream.stream() "
                "(one aggregate's events) may be read here.");
}

void RequirePreloaded() {
  if (g_reg == nullptr)
    throw Error("55000", "evstream is not loaded through shared_preload_libraries", "",
                "Add evstream to shared_preload_libraries and restart PostgreSQL.");
}

}  // namespace

void Init() {
  g_prev_request = shmem_request_hook;
  shmem_request_hook = OnShmemRequest;
  g_prev_startup = shmem_startup_hook;
  shmem_startup_hook = OnShmemStartup;
  RegisterXactCallback(OnXact, nullptr);
}

int64 KeyForAppend() {
  if (g_key != 0) return g_key;
  RequirePreloaded();
  int db = DbIndex();
  Anchor(db);
  if (!g_exit_hook) {
    pg::PgCall([] { on_shmem_exit(OnExit, (Datum)0); });
    g_exit_hook = true;
  }
  for (;;) {
    int64 key = 0, next = 0;
    LWLockAcquire(Lock(db), LW_EXCLUSIVE);
    DbState* d = &g_reg->dbs[db];
    if (d->next_key < d->reserved_until) {
      key = d->next_key++;
      Entry* e = MyEntry();
      e->db = db;
      e->pid = MyProcPid;
      e->since = GetCurrentTimestamp();
      pg_atomic_write_u64(&e->key, static_cast<uint64>(key));
    }
    next = d->next_key;
    LWLockRelease(Lock(db));
    if (key != 0) return g_key = key;
    int64 block = ReserveBlock(next);
    LWLockAcquire(Lock(db), LW_EXCLUSIVE);
    d = &g_reg->dbs[db];
    // Keys only grow: a block below the counter (another backend reserved a later one) is
    // dropped; one above it moves the counter up to its start.
    if ((block + 1) * kBlock > d->next_key) {
      d->next_key = std::max(d->next_key, block * kBlock);
      d->reserved_until = (block + 1) * kBlock;
    }
    LWLockRelease(Lock(db));
  }
}

int64 ReadHorizon(int64 after_key) {
  RequirePreloaded();
  RequirePrimary();
  int db = DbIndex();
  Anchor(db);
  int64 h = ComputeHorizon(db);
  bool xact_snapshot = false;
  pg::PgCall([&] { xact_snapshot = IsolationUsesXactSnapshot(); });
  if (!xact_snapshot) return h;
  Datum snap = (Datum)0;
  pg::PgCall([&] {
    snap = DirectFunctionCall1(pg_current_snapshot, (Datum)0);
    PushActiveSnapshot(GetLatestSnapshot());
  });
  Datum args[3] = {Int64GetDatum(after_key), Int64GetDatum(h), snap};
  uint64_t n = 0;
  try {
    n = g_invisible.Run(args, nullptr, true, 1);
  } catch (...) {
    pg::PgCall([] { PopActiveSnapshot(); });
    throw;
  }
  pg::PgCall([] { PopActiveSnapshot(); });
  bool isnull = true;
  Datum first = n == 1 ? pg::ResultValue(0, 1, &isnull) : (Datum)0;
  if (!isnull) h = std::min(h, DatumGetInt64(first));
  return h;
}

void PushReadSnapshot() {
  pg::PgCall([] { PushActiveSnapshot(GetTransactionSnapshot()); });
}

State CurrentState() {
  RequirePreloaded();
  RequirePrimary();
  int db = DbIndex();
  Anchor(db);
  State s;
  LWLockAcquire(Lock(db), LW_SHARED);
  s.next_key = g_reg->dbs[db].next_key;
  s.horizon = s.next_key;
  for (int i = 0; i < g_reg->nentries; i++) {
    Entry* e = &g_reg->entries[i];
    if (e->db != db) continue;
    int64 key = static_cast<int64>(pg_atomic_read_u64(&e->key));
    if (key == 0) continue;
    s.holders.push_back(Holder{e->pid, key, e->since});
    s.horizon = std::min(s.horizon, key);
  }
  LWLockRelease(Lock(db));
  std::sort(s.holders.begin(), s.holders.end(),
            [](const Holder& a, const Holder& b) { return a.key < b.key; });
  return s;
}

}  // namespace evstream::horizon
