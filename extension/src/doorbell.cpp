// Doorbell background workers and the commit hook that wakes them (see doorbell.hpp).
#include "doorbell.hpp"

extern "C" {
#include "access/xact.h"           // RegisterXactCallback, StartTransactionCommand
#include "commands/async.h"        // Async_Notify
#include "miscadmin.h"             // MyDatabaseId, MyLatch, CHECK_FOR_INTERRUPTS
#include "pgstat.h"                // pgstat_report_activity, PG_WAIT_EXTENSION
#include "postmaster/bgworker.h"   // RegisterDynamicBackgroundWorker
#include "postmaster/interrupt.h"  // SignalHandlerForShutdownRequest, ShutdownRequestPending
#include "storage/ipc.h"           // shmem_request_hook, on_shmem_exit
#include "storage/latch.h"         // SetLatch, WaitLatch
#include "storage/shmem.h"         // ShmemInitStruct
#include "storage/spin.h"          // slock_t
#include "tcop/tcopprot.h"         // die
#include "utils/guc.h"             // SetConfigOption
#include "utils/timestamp.h"       // GetCurrentTimestamp

PGDLLEXPORT void evstream_doorbell_main(Datum arg);
}

namespace evstream::doorbell {

int g_mode = kWorker;
int g_idle_exit_ms = 2000;

namespace {

constexpr int kMaxDatabases = 64;

// kStarting: a worker was registered for the slot and has not reached its loop yet; kDead: its
// worker exited while commits still counted on the slot or a ring was pending (the next commit
// starts a new one; the postmaster restarts one that exited on an error).
enum SlotState { kFree = 0, kStarting, kRunning, kDead };

// A worker that has not reached its loop this long after registration never will: start another.
constexpr int kStartTimeoutMs = 5000;

// After each NOTIFY the worker waits this long before the next one (see the worker's loop).
constexpr long kCoalesceUs = 1000;

struct Slot {
  SlotState state;
  Oid dbid;
  uint32 generation;    // bumped at each worker registration: a stale worker leaves at once
  TimestampTz started;  // when the current worker was registered
  bool pending;         // a commit that appended happened since the worker last sent
  bool pending_ephemeral;  // a commit that published happened since the worker last sent
  int committing;       // backends between pre-commit and commit that counted on this slot
  Latch* latch;         // the worker's latch once it runs
};

struct Shared {
  slock_t mutex;
  LWLock* position_lock;
  uint64 rings;  // notifications sent by all workers since server start
  Slot slots[kMaxDatabases];
  // The databases in which a backend rings evstream_ephemeral inside its own commit right now
  // (InvalidOid: a free entry; at most one entry, one backend, per database: see RingAlone).
  Oid ringing_db[kMaxDatabases];
};

Shared* g_shared = nullptr;
bool g_preloaded = false;
shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;

// Per backend: what the current transaction did.
bool g_appended = false;
bool g_published = false;
int g_ringing_slot = -1;  // index in Shared::ringing_db this commit holds (RingAlone)
int g_counted_slot = -1;  // slot whose `committing` this transaction incremented
int g_worker_slot = -1;   // in a doorbell worker: its slot
uint32 g_worker_generation = 0;

// Caller holds the mutex. Frees a slot; its generation survives, so a worker registered for an
// earlier use of the slot can never mistake a later one for its own.
void FreeSlot(Slot* s) {
  uint32 generation = s->generation;
  *s = Slot{};
  s->generation = generation;
}

void OnShmemRequest() {
  if (g_prev_request) g_prev_request();
  RequestAddinShmemSpace(sizeof(Shared));
  RequestNamedLWLockTranche("evstream", 1);
}

void OnShmemStartup() {
  if (g_prev_startup) g_prev_startup();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  g_shared = static_cast<Shared*>(ShmemInitStruct("evstream", sizeof(Shared), &found));
  if (!found) {
    memset(g_shared, 0, sizeof(Shared));
    SpinLockInit(&g_shared->mutex);
    g_shared->position_lock = &(GetNamedLWLockTranche("evstream"))->lock;
  }
  LWLockRelease(AddinShmemInitLock);
}

// Caller holds the mutex.
int FindSlot(Oid dbid) {
  for (int i = 0; i < kMaxDatabases; i++)
    if (g_shared->slots[i].state != kFree && g_shared->slots[i].dbid == dbid) return i;
  return -1;
}

// What this transaction did, rung inside it (no worker).
void NotifyInline() {
  if (g_appended) Async_Notify(kChannel, nullptr);
  if (g_published) Async_Notify(kEphemeralChannel, nullptr);
}

// Pre-commit: make sure a worker serves this database and keep it from exiting until our
// commit has rung. May ereport (we are still allowed to fail here). A slot whose worker died
// (kDead) or never started (kStarting for longer than kStartTimeoutMs) gets a new worker; the
// slot itself is never freed while a backend counts on it.
void EnsureWorker() {
  bool start = false;
  uint32 generation = 0;
  TimestampTz now = GetCurrentTimestamp();
  SpinLockAcquire(&g_shared->mutex);
  int idx = FindSlot(MyDatabaseId);
  if (idx < 0) {
    for (int i = 0; i < kMaxDatabases; i++) {
      if (g_shared->slots[i].state == kFree) {
        idx = i;
        break;
      }
    }
    if (idx >= 0) {
      Slot* s = &g_shared->slots[idx];
      FreeSlot(s);
      s->state = kDead;
      s->dbid = MyDatabaseId;
    }
  }
  if (idx >= 0) {
    Slot* s = &g_shared->slots[idx];
    if (s->state == kDead ||
        (s->state == kStarting && TimestampDifferenceExceeds(s->started, now, kStartTimeoutMs))) {
      s->state = kStarting;
      s->latch = nullptr;
      s->generation++;
      s->started = now;
      generation = s->generation;
      start = true;
    }
    s->committing++;
  }
  SpinLockRelease(&g_shared->mutex);
  if (idx < 0) {
    ereport(WARNING, (errmsg("evstream: no free doorbell slot; notifying inside the transaction")));
    NotifyInline();
    return;
  }
  g_counted_slot = idx;
  if (!start) return;

  BackgroundWorker worker;
  memset(&worker, 0, sizeof worker);
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  // An error exit (say, no connection slot free) is retried by the postmaster after 1 s; a
  // clean exit (idle, or a stale generation) unregisters the worker.
  worker.bgw_restart_time = 1;
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "evstream");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "evstream_doorbell_main");
  snprintf(worker.bgw_name, BGW_MAXLEN, "evstream doorbell for database %u", MyDatabaseId);
  snprintf(worker.bgw_type, BGW_MAXLEN, "evstream doorbell");
  worker.bgw_main_arg = Int64GetDatum((static_cast<int64>(generation) << 16) | idx);
  worker.bgw_notify_pid = 0;
  if (!RegisterDynamicBackgroundWorker(&worker, nullptr)) {
    // Ring this commit inline; the slot stays (others may count on it), marked for a new try.
    SpinLockAcquire(&g_shared->mutex);
    Slot* s = &g_shared->slots[idx];
    s->committing--;
    if (s->generation == generation && s->state == kStarting) s->state = kDead;
    SpinLockRelease(&g_shared->mutex);
    g_counted_slot = -1;
    ereport(WARNING, (errmsg("evstream: could not start the doorbell worker; notifying inside "
                             "the transaction"),
                      errhint("Raise max_worker_processes.")));
    NotifyInline();
  }
}

// Pre-commit of a transaction that only published (no log append): when no other commit of this
// database rings or counts on the doorbell worker right now, ring evstream_ephemeral inside this
// commit (as the NOTIFY-payload publish did), saving the worker's wake-up and its transaction.
// The cluster-wide notify lock is then held by this commit alone: at most one backend per
// database rings this way at a time (the check and the claim are one step under the mutex);
// every other concurrent publisher goes through the worker, so concurrent writers never queue on
// that lock. Returns true when it rang.
bool RingAlone() {
  bool alone = false;
  SpinLockAcquire(&g_shared->mutex);
  int idx = FindSlot(MyDatabaseId);
  bool worker_busy = idx >= 0 && (g_shared->slots[idx].committing > 0 || g_shared->slots[idx].pending_ephemeral ||
                                  g_shared->slots[idx].pending);
  int free_entry = -1;
  bool taken = false;
  for (int i = 0; i < kMaxDatabases; i++) {
    if (g_shared->ringing_db[i] == MyDatabaseId) taken = true;
    else if (g_shared->ringing_db[i] == InvalidOid && free_entry < 0) free_entry = i;
  }
  if (!worker_busy && !taken && free_entry >= 0) {
    g_shared->ringing_db[free_entry] = MyDatabaseId;
    g_ringing_slot = free_entry;
    alone = true;
  }
  SpinLockRelease(&g_shared->mutex);
  if (alone) Async_Notify(kEphemeralChannel, nullptr);
  return alone;
}

// Commit or abort: the inline ring of RingAlone is over.
void ReleaseAlone() {
  if (g_ringing_slot < 0) return;
  SpinLockAcquire(&g_shared->mutex);
  g_shared->ringing_db[g_ringing_slot] = InvalidOid;
  SpinLockRelease(&g_shared->mutex);
  g_ringing_slot = -1;
}

// Commit (cannot fail): flag the slot and wake its worker. Abort: just uncount.
void Release(bool ring) {
  if (g_counted_slot < 0) return;
  Latch* latch = nullptr;
  SpinLockAcquire(&g_shared->mutex);
  Slot* s = &g_shared->slots[g_counted_slot];
  s->committing--;
  if (ring) {
    if (g_appended) s->pending = true;
    if (g_published) s->pending_ephemeral = true;
    latch = s->latch;
  }
  SpinLockRelease(&g_shared->mutex);
  g_counted_slot = -1;
  if (latch != nullptr) SetLatch(latch);
}

void OnXact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
      if (g_published && !g_appended && g_mode == kWorker && RingAlone()) g_published = false;
      if ((g_appended || g_published) && g_mode == kWorker) EnsureWorker();
      break;
    case XACT_EVENT_COMMIT:
      Release(true);
      ReleaseAlone();
      g_appended = false;
      g_published = false;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_ABORT:
      Release(false);
      ReleaseAlone();
      g_appended = false;
      g_published = false;
      break;
    default:
      break;
  }
}

// A worker leaving for any reason (error, SIGTERM) other than its idle exit: free the slot only
// when nobody counts on it and nothing is pending; otherwise leave it kDead for the next commit
// (or the postmaster's restart) to start a new worker that rings what is pending.
void OnWorkerExit(int, Datum) {
  if (g_worker_slot < 0 || g_shared == nullptr) return;
  SpinLockAcquire(&g_shared->mutex);
  Slot* s = &g_shared->slots[g_worker_slot];
  if (s->generation == g_worker_generation && s->state != kFree) {
    if (s->committing == 0 && !s->pending && !s->pending_ephemeral) {
      FreeSlot(s);
    } else {
      s->state = kDead;
      s->latch = nullptr;
    }
  }
  SpinLockRelease(&g_shared->mutex);
  g_worker_slot = -1;
}

void SendNotify(bool log, bool ephemeral) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  pgstat_report_activity(STATE_RUNNING, "NOTIFY evstream");
  if (log) Async_Notify(kChannel, nullptr);
  if (ephemeral) Async_Notify(kEphemeralChannel, nullptr);
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

void Init() {
  g_preloaded = true;
  g_prev_request = shmem_request_hook;
  shmem_request_hook = OnShmemRequest;
  g_prev_startup = shmem_startup_hook;
  shmem_startup_hook = OnShmemStartup;
  RegisterXactCallback(OnXact, nullptr);
}

bool Preloaded() { return g_preloaded && g_shared != nullptr; }

LWLock* PositionLock() { return g_shared->position_lock; }

uint64 Rings() {
  SpinLockAcquire(&g_shared->mutex);
  uint64 n = g_shared->rings;
  SpinLockRelease(&g_shared->mutex);
  return n;
}

void MarkAppended() {
  if (g_mode == kInline) Async_Notify(kChannel, nullptr);
  else if (g_mode == kWorker) g_appended = true;
}

void MarkPublishedInline() {
  if (g_mode != kOff) Async_Notify(kEphemeralChannel, nullptr);
}

void MarkPublished() {
  // Not preloaded (no shared memory, no commit hook): ring inside the transaction.
  if (g_mode == kInline || !Preloaded()) Async_Notify(kEphemeralChannel, nullptr);
  else if (g_mode == kWorker) g_published = true;
}

}  // namespace evstream::doorbell

// The worker: wait on the latch; when a commit flagged the slot, send one NOTIFY for every
// commit since the last. Exit after evstream.doorbell_idle_exit ms without work (so that
// DROP DATABASE is not held up), but never while a committing backend counts on it.
void evstream_doorbell_main(Datum arg) {
  using namespace evstream::doorbell;
  int64 packed = DatumGetInt64(arg);
  int idx = static_cast<int>(packed & 0xFFFF);
  uint32 generation = static_cast<uint32>(packed >> 16);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();

  // A worker restarted by the postmaster after the slot moved on (freed, or a newer worker
  // registered) has nothing to do: a clean exit unregisters it.
  Oid dbid = InvalidOid;
  SpinLockAcquire(&g_shared->mutex);
  bool mine = g_shared->slots[idx].generation == generation && g_shared->slots[idx].state != kFree;
  if (mine) {
    dbid = g_shared->slots[idx].dbid;
    g_shared->slots[idx].state = kStarting;  // restarted after an error exit: no longer dead
  }
  SpinLockRelease(&g_shared->mutex);
  if (!mine) proc_exit(0);
  g_worker_slot = idx;
  g_worker_generation = generation;
  before_shmem_exit(OnWorkerExit, (Datum)0);

  BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
  pgstat_report_appname("evstream doorbell");
  // The NOTIFY is a wake-up, not data: its commit need not wait for a WAL flush.
  SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

  SpinLockAcquire(&g_shared->mutex);
  mine = g_shared->slots[idx].generation == generation;
  if (mine) {
    g_shared->slots[idx].latch = MyLatch;
    g_shared->slots[idx].state = kRunning;
  }
  SpinLockRelease(&g_shared->mutex);
  if (!mine) {
    g_worker_slot = -1;
    proc_exit(0);
  }

  TimestampTz last_work = GetCurrentTimestamp();
  for (;;) {
    bool pending, pending_ephemeral;
    SpinLockAcquire(&g_shared->mutex);
    pending = g_shared->slots[idx].pending;
    pending_ephemeral = g_shared->slots[idx].pending_ephemeral;
    g_shared->slots[idx].pending = false;
    g_shared->slots[idx].pending_ephemeral = false;
    SpinLockRelease(&g_shared->mutex);

    if (pending || pending_ephemeral) {
      SendNotify(pending, pending_ephemeral);
      SpinLockAcquire(&g_shared->mutex);
      g_shared->rings++;
      SpinLockRelease(&g_shared->mutex);
      last_work = GetCurrentTimestamp();
      // Coalesce: stay awake, off the latch, for kCoalesceUs. The commits of that window only set
      // the flag and our latch (SetLatch signals a process only while it sleeps on its latch), so
      // a busy database costs its committing backends no kill() and us no wake-up per commit;
      // they are rung together by the next NOTIFY, at most kCoalesceUs late. An idle database's
      // first commit still rings at once.
      pg_usleep(kCoalesceUs);
      CHECK_FOR_INTERRUPTS();
      continue;  // commits that rang while we sent or waited are served at once
    }
    if (TimestampDifferenceExceeds(last_work, GetCurrentTimestamp(), g_idle_exit_ms)) {
      bool quit = false;
      SpinLockAcquire(&g_shared->mutex);
      Slot* s = &g_shared->slots[idx];
      if (s->generation != generation) {
        quit = true;  // a newer worker took the slot over
      } else if (!s->pending && !s->pending_ephemeral && s->committing == 0) {
        FreeSlot(s);
        quit = true;
      }
      SpinLockRelease(&g_shared->mutex);
      if (quit) {
        g_worker_slot = -1;
        proc_exit(0);
      }
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                    Max(g_idle_exit_ms / 4, 10), PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}
