// The ephemeral outbox's writer and reader (see outbox.hpp).
#include <cstring>  // first: PostgreSQL's port.h redefines snprintf
#include <vector>

#include "outbox.hpp"

#include "doorbell.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/detoast.h"      // detoast_external_attr
#include "access/genam.h"        // systable_beginscan
#include "access/heapam.h"       // simple_heap_insert
#include "access/stratnum.h"     // BTGreaterStrategyNumber, BTEqualStrategyNumber
#include "access/table.h"        // table_open
#include "access/transam.h"      // ReadNextFullTransactionId
#include "access/xact.h"         // GetCurrentTransactionId
#include "catalog/dependency.h"  // getIdentitySequence
#include "catalog/namespace.h"   // get_namespace_oid
#include "catalog/pg_type.h"     // INT8OID, INT8ARRAYOID, INT4OID
#include "commands/sequence.h"   // nextval_internal
#include "executor/executor.h"   // ExecOpenIndices, ExecInsertIndexTuples
#include "funcapi.h"             // ReturnSetInfo
#include "nodes/execnodes.h"     // ResultRelInfo
#include "utils/array.h"         // deconstruct_array
#include "utils/builtins.h"      // CStringGetTextDatum
#include "utils/fmgroids.h"      // F_INT8GT, F_INT8EQ
#include "utils/inval.h"         // CacheRegisterRelcacheCallback
#include "utils/lsyscache.h"     // get_relname_relid
#include "utils/rel.h"           // RelationGetDescr
#include "utils/relcache.h"      // RelationGetPrimaryKeyIndex
#include "utils/snapmgr.h"       // GetActiveSnapshot
#include "utils/tuplestore.h"    // tuplestore_putvalues
#include "utils/xid8.h"          // FullTransactionIdGetDatum
}

namespace evstream::outbox {
namespace {

// The table's columns, in order (sql/parts/40_realtime.sql).
constexpr int kColumns = 7;
const char* const kColumnNames[kColumns] = {"id", "kind", "channel", "type", "entity", "entity_id", "payload"};
const Oid kColumnTypes[kColumns] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

// Cached per backend; forgotten when the table's relcache entry is invalidated (ALTER, DROP,
// DROP EXTENSION) or on a full reset.
Oid g_relid = InvalidOid;
Oid g_sequence = InvalidOid;

void OnRelcache(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_relid) {
    g_relid = InvalidOid;
    g_sequence = InvalidOid;
  }
}

// Inside PgCall. The cached OIDs can be forgotten by any call that takes a lock (it processes
// invalidation messages, which run OnRelcache): callers keep what these return in locals.
Oid Relid() {
  if (!OidIsValid(g_relid)) {
    Oid relid = get_relname_relid("ephemeral_outbox", get_namespace_oid("evstream", false));
    if (!OidIsValid(relid)) elog(ERROR, "evstream: table evstream.ephemeral_outbox is missing");
    Oid sequence = getIdentitySequence(relid, 1, false);
    g_sequence = sequence;
    g_relid = relid;
  }
  return g_relid;
}

// Inside PgCall: the identity sequence of the table `relid` (opened by the caller).
Oid SequenceOf(Oid relid) {
  if (OidIsValid(g_relid) && g_relid == relid && OidIsValid(g_sequence)) return g_sequence;
  Oid sequence = getIdentitySequence(relid, 1, false);
  g_sequence = sequence;
  g_relid = relid;
  return sequence;
}

// Inside PgCall: the table must still be the one this code writes (a changed definition is an
// error, never a misplaced column).
void CheckShape(TupleDesc desc) {
  bool ok = desc->natts == kColumns;
  for (int i = 0; ok && i < kColumns; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    ok = !att->attisdropped && att->atttypid == kColumnTypes[i] &&
         strcmp(NameStr(att->attname), kColumnNames[i]) == 0;
  }
  if (!ok) elog(ERROR, "evstream: evstream.ephemeral_outbox does not have the expected columns");
}

Datum OptText(const char* s, bool* isnull) {
  *isnull = s == nullptr;
  return s == nullptr ? (Datum)0 : CStringGetTextDatum(s);
}

// pg_snapshot_xmin's widening of a 32-bit xid to the epoch of `next` (xid8funcs.c).
FullTransactionId Widen(TransactionId xid, FullTransactionId next) {
  if (!TransactionIdIsNormal(xid)) return FullTransactionIdFromEpochAndXid(0, xid);
  uint32 epoch = EpochFromFullTransactionId(next);
  if (xid > XidFromFullTransactionId(next)) epoch--;
  return FullTransactionIdFromEpochAndXid(epoch, xid);
}

// Inside PgCall: one row of the outbox into the result (9 columns: the row's 7, then horizon and
// next_xid NULL). Out-of-line values are fetched now: the result outlives the scan.
void PutRow(ReturnSetInfo* rsinfo, TupleDesc desc, HeapTuple tuple) {
  Datum values[kColumns + 2];
  bool nulls[kColumns + 2];
  heap_deform_tuple(tuple, desc, values, nulls);
  for (int i = 1; i < kColumns; i++)
    if (!nulls[i] && VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
      values[i] = PointerGetDatum(detoast_external_attr(reinterpret_cast<struct varlena*>(DatumGetPointer(values[i]))));
  nulls[kColumns] = nulls[kColumns + 1] = true;
  values[kColumns] = values[kColumns + 1] = (Datum)0;
  tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

int CompareIds(const void* x, const void* y) {
  int64 a = *static_cast<const int64*>(x);
  int64 b = *static_cast<const int64*>(y);
  return a < b ? -1 : a > b ? 1 : 0;
}

// Inside PgCall: the gap ids at or below `after`, ascending and each once.
int64* SortedGaps(Datum gaps, int64 after, int* count) {
  ArrayType* array = DatumGetArrayTypeP(gaps);
  Datum* elems = nullptr;
  bool* elem_nulls = nullptr;
  int n = 0;
  deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &elem_nulls, &n);
  int64* ids = static_cast<int64*>(palloc(sizeof(int64) * Max(n, 1)));
  int kept = 0;
  for (int i = 0; i < n; i++)
    if (!elem_nulls[i] && DatumGetInt64(elems[i]) <= after) ids[kept++] = DatumGetInt64(elems[i]);
  qsort(ids, kept, sizeof(int64), CompareIds);
  int unique = 0;
  for (int i = 0; i < kept; i++)
    if (unique == 0 || ids[unique - 1] != ids[i]) ids[unique++] = ids[i];
  *count = unique;
  return ids;
}

}  // namespace

void Init() { CacheRegisterRelcacheCallback(OnRelcache, (Datum)0); }

void Insert(const std::vector<Row>& rows, Ring ring, int64* ids) {
  if (rows.empty()) return;
  const Row* data = rows.data();
  size_t n = rows.size();
  bool ring_inline = ring == Ring::kInline;
  // No C++ object is alive inside: PostgreSQL may longjmp out of any call here.
  pg::PgCall([data, n, ring_inline, ids] {
    Oid relid = Relid();
    // The transaction id before the row ids: a reader that sees an id missing knows the gap is
    // final once every transaction up to the next id at that time has ended.
    (void)GetCurrentTransactionId();
    Relation rel = table_open(relid, RowExclusiveLock);
    // After the lock (table_open may have run OnRelcache): a local, since every nextval locks
    // the sequence and may run it again.
    Oid sequence = SequenceOf(relid);
    TupleDesc desc = RelationGetDescr(rel);
    CheckShape(desc);
    ResultRelInfo* rri = makeNode(ResultRelInfo);
    InitResultRelInfo(rri, rel, 1, nullptr, 0);
    ExecOpenIndices(rri, false);
    EState* estate = CreateExecutorState();
    TupleTableSlot* slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
    for (size_t i = 0; i < n; i++) {
      const Row& r = data[i];
      if (r.payload == nullptr) elog(ERROR, "evstream: an outbox row needs a payload");
      Datum values[kColumns];
      bool nulls[kColumns] = {false};
      int64 id = nextval_internal(sequence, false);
      if (ids != nullptr) ids[i] = id;
      values[0] = Int64GetDatum(id);
      values[1] = CStringGetTextDatum(r.presence ? "presence" : "event");
      values[2] = OptText(r.channel, &nulls[2]);
      values[3] = OptText(r.type, &nulls[3]);
      values[4] = OptText(r.entity, &nulls[4]);
      values[5] = OptText(r.entity_id, &nulls[5]);
      values[6] = CStringGetTextDatum(r.payload);
      HeapTuple tuple = heap_form_tuple(desc, values, nulls);
      simple_heap_insert(rel, tuple);
      if (rri->ri_NumIndices > 0) {
        ExecStoreHeapTuple(tuple, slot, false);
        (void)ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL);
        ExecClearTuple(slot);
        ResetPerTupleExprContext(estate);
      }
      heap_freetuple(tuple);
    }
    ExecDropSingleTupleTableSlot(slot);
    ExecCloseIndices(rri);
    FreeExecutorState(estate);
    table_close(rel, NoLock);  // RowExclusiveLock is held to the end of the transaction
    if (ring_inline) doorbell::MarkPublishedInline();
    else doorbell::MarkPublished();
  });
}

void Read(FunctionCallInfo fcinfo, int64 after, bool after_null, Datum gaps, bool gaps_null,
          int32 max_count) {
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  int32 limit = Max(1, Min(max_count, 10000));
  // Direct scans of the primary key under the active snapshot (the caller's: the function is
  // STABLE): no planner, whatever the table's (always stale) statistics say, and the horizon
  // row describes exactly the snapshot the rows were read with.
  pg::PgCall([rsinfo, after, after_null, gaps, gaps_null, limit] {
    Snapshot snapshot = GetActiveSnapshot();
    // The horizon row: this snapshot's xmin, and the next transaction id, read after the
    // snapshot was taken.
    Datum values[kColumns + 2];
    bool nulls[kColumns + 2] = {true, false, true, true, true, true, true, false, false};
    FullTransactionId next = ReadNextFullTransactionId();
    values[1] = CStringGetTextDatum("horizon");
    values[7] = FullTransactionIdGetDatum(Widen(snapshot->xmin, next));
    values[8] = FullTransactionIdGetDatum(next);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    if (after_null) return;

    Relation rel = table_open(Relid(), AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    CheckShape(desc);
    Oid pkey = RelationGetPrimaryKeyIndex(rel);
    if (!OidIsValid(pkey)) elog(ERROR, "evstream: evstream.ephemeral_outbox has no primary key");
    ScanKeyData key;
    // The gaps the reader still waits for, that exist now.
    if (!gaps_null) {
      int count = 0;
      int64* ids = SortedGaps(gaps, after, &count);
      for (int i = 0; i < count; i++) {
        ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(ids[i]));
        SysScanDesc scan = systable_beginscan(rel, pkey, true, snapshot, 1, &key);
        if (HeapTuple tuple = systable_getnext(scan)) PutRow(rsinfo, desc, tuple);
        systable_endscan(scan);
      }
    }
    // Then up to `limit` rows above `after`, in id order.
    ScanKeyInit(&key, 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(after));
    SysScanDesc scan = systable_beginscan(rel, pkey, true, snapshot, 1, &key);
    int32 n = 0;
    HeapTuple tuple;
    while (n < limit && (tuple = systable_getnext(scan)) != nullptr) {
      PutRow(rsinfo, desc, tuple);
      n++;
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
  });
}

}  // namespace evstream::outbox
