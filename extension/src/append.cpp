// post_event / post_events (see append.hpp for the contract, README for the behaviour).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include "append.hpp"

#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "aggregate_lock.hpp"
#include "catalog.hpp"
#include "doorbell.hpp"
#include "evstream/error.hpp"
#include "evstream/validate.hpp"
#include "horizon.hpp"
#include "pg/interrupts.hpp"
#include "pg/jsonb_json.hpp"
#include "pg/row_insert.hpp"
#include "pg/search_path.hpp"
#include "pg/spi.hpp"
#include "pg/user.hpp"
#include "projection.hpp"
#include "security.hpp"

extern "C" {
#include "catalog/namespace.h"  // get_namespace_oid
#include "access/genam.h"       // index_beginscan
#include "access/nbtree.h"      // BTEqualStrategyNumber
#include "access/table.h"       // table_open
#include "access/tableam.h"     // table_slot_create
#include "access/xact.h"        // GetTopFullTransactionId
#include "catalog/pg_type.h"    // TEXTOID, JSONBOID, ...
#include "commands/sequence.h"  // nextval_internal
#include "storage/lwlock.h"     // LWLockAcquire
#include "utils/builtins.h"     // text_to_cstring
#include "utils/fmgroids.h"     // F_GEN_RANDOM_UUID
#include "utils/inval.h"        // CacheRegisterRelcacheCallback
#include "utils/lsyscache.h"    // get_relname_relid
#include "utils/rel.h"          // IndexRelationGetNumberOfKeyAttributes
#include "utils/snapmgr.h"      // RegisterSnapshot, GetTransactionSnapshot
#include "utils/timestamp.h"    // GetCurrentTransactionStartTimestamp
#include "utils/xid8.h"         // FullTransactionIdGetDatum
}

namespace evstream::append {
namespace {

using pg::KeptPlan;
using pg::PgCall;
namespace ss = evstream::sqlstate;

KeptPlan g_lock_key(
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1 || pg_catalog.chr(31) || $2, 7331))",
    {TEXTOID, TEXTOID});
KeptPlan g_find_key(
    "SELECT e, (e.aggregate_type = $3 AND e.aggregate_id = $4 AND e.event_type = $5"
    "           AND e.data = $6 AND e.display IS NOT DISTINCT FROM $7 AND e.created_by = $8)"
    "  FROM evstream.events e WHERE e.channel = $1 AND e.idempotency_key = $2",
    {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID});
// FOR UPDATE: waits for a rebuild that is rewriting the state, then reads what it wrote.
KeptPlan g_state(
    "SELECT s.state FROM evstream.aggregate_states s"
    " WHERE s.aggregate_type OPERATOR(pg_catalog.=) $1 AND s.aggregate_id OPERATOR(pg_catalog.=) $2"
    " FOR UPDATE",
    {TEXTOID, TEXTOID}, pg::Planning::kGeneric);
// channel: the aggregate's first event's ($4 when this event is the first).
KeptPlan g_set_state(
    "INSERT INTO evstream.aggregate_states AS s (aggregate_type, aggregate_id, state, channel)"
    " VALUES ($1, $2, $3, coalesce((SELECT f.channel FROM evstream.events f"
    "   WHERE f.aggregate_type OPERATOR(pg_catalog.=) $1 AND f.aggregate_id OPERATOR(pg_catalog.=) $2"
    "     AND f.version OPERATOR(pg_catalog.=) 1), $4))"
    " ON CONFLICT (aggregate_type, aggregate_id)"
    " DO UPDATE SET state = EXCLUDED.state, updated_at = pg_catalog.now()",
    {TEXTOID, TEXTOID, TEXTOID, TEXTOID});
KeptPlan g_insert(
    "INSERT INTO evstream.events AS e (position, id, tx, channel, aggregate_type, aggregate_id,"
    "   version, event_type, data, metadata, display, created_by, created_at, correlation_id,"
    "   causation_id, idempotency_key, order_key)"
    " VALUES ($1, pg_catalog.gen_random_uuid(), pg_catalog.pg_current_xact_id(), $2, $3, $4, $5,"
    "   $6, $7, $8, $9, $10, pg_catalog.now(), $11, $12, $13, $14)"
    " RETURNING e",
    {INT8OID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, TEXTOID,
     UUIDOID, UUIDOID, TEXTOID, INT8OID});

Datum Text(const char* s) { return s ? CStringGetTextDatum(s) : (Datum)0; }

void Check(const std::optional<std::string>& problem) {
  if (problem) throw Error(ss::kInvalidParameter, *problem);
}

void Require(const Request& r, const char* value, const char* field) {
  if (value == nullptr) throw Error(ss::kNullValue, r.label + field + " must not be null");
}

bool IsObject(Jsonb* j) { return JB_ROOT_IS_OBJECT(j) && !JB_ROOT_IS_SCALAR(j); }

// The display protocol: an object; when it has "role", one of user/assistant/system.
void CheckDisplay(const Request& r) {
  if (r.display == nullptr) return;
  if (!IsObject(r.display))
    throw Error(ss::kInvalidParameter, r.label + "display must be a JSON object or null");
  std::optional<std::string> role;
  bool role_not_string = false;
  PgCall([&] {
    JsonbValue v;
    JsonbValue* found = getKeyJsonValueFromContainer(&r.display->root, "role", 4, &v);
    if (found == nullptr) return;
    if (found->type == jbvString) role.emplace(found->val.string.val, found->val.string.len);
    else role_not_string = true;
  });
  if (role_not_string)
    throw Error(ss::kInvalidParameter, r.label + "display.role must be a string");
  if (role) Check(validate::DisplayRole(r.label + "display.role", *role));
}

void ValidateRequest(const Request& r) {
  Require(r, r.channel, "channel");
  Require(r, r.aggregate_type, "aggregate_type");
  Require(r, r.aggregate_id, "aggregate_id");
  Require(r, r.event_type, "event_type");
  Check(validate::Channel(r.label + "channel", r.channel));
  Check(validate::Identifier(r.label + "aggregate_type", r.aggregate_type));
  Check(validate::Identifier(r.label + "aggregate_id", r.aggregate_id));
  Check(validate::EventType(r.label + "event_type", r.event_type));
  if (r.data == nullptr) throw Error(ss::kNullValue, r.label + "data must not be null");
  if (!IsObject(r.data)) throw Error(ss::kInvalidParameter, r.label + "data must be a JSON object");
  if (r.metadata != nullptr && !IsObject(r.metadata))
    throw Error(ss::kInvalidParameter, r.label + "metadata must be a JSON object");
  CheckDisplay(r);
  if (r.idempotency_key) Check(validate::IdempotencyKey(r.label + "idempotency_key", r.idempotency_key));
  if (r.has_expected_version && r.expected_version < 0)
    throw Error(ss::kInvalidParameter, r.label + "expected_version must be 0 or more");
  if (r.created_by) Check(validate::CreatedBy(r.label + "created_by", r.created_by));
}

// Looks up an earlier event with the same (channel, idempotency_key), holding a transaction
// lock on the key so that racing sessions serialise here and the loser sees the winner's row.
std::optional<Datum> FindByKey(const Request& r) {
  Datum key_args[2] = {Text(r.channel), Text(r.idempotency_key)};
  g_lock_key.Run(key_args, nullptr, false, 1);
  Datum args[8] = {Text(r.channel), Text(r.idempotency_key), Text(r.aggregate_type),
                   Text(r.aggregate_id), Text(r.event_type), JsonbPGetDatum(r.data),
                   r.display ? JsonbPGetDatum(r.display) : (Datum)0, Text(r.created_by)};
  char nulls[8];
  memset(nulls, ' ', sizeof nulls);
  if (!r.display) nulls[6] = 'n';
  if (g_find_key.Run(args, nulls, false, 1) == 0) return std::nullopt;
  bool isnull = false;
  Datum row = pg::ResultValue(0, 1, &isnull);
  bool same = DatumGetBool(pg::ResultValue(0, 2, &isnull));
  // One message whatever differs (content or creator): another creator learns nothing of the
  // original event.
  if (!same)
    throw Error(ss::kIdempotencyConflict,
                r.label + "idempotency_key \"" + r.idempotency_key + "\" was already used on " +
                    r.channel + " for a different event",
                "", "Use a new idempotency key for a new event.");
  return row;
}

std::string AggregateName(const Request& r) {
  return std::string(r.aggregate_type) + "/" + r.aggregate_id;
}

// The aggregate after this event: its new version and its state before the event.
struct Bumped {
  int32 version;
  std::optional<std::string> state;
};

// The log's relations by OID, looked up by name once and forgotten when the relcache drops
// any of them (DROP / CREATE EXTENSION, REINDEX, ALTER TABLE) or resets. Inside PgCall only.
struct LogRelations {
  Oid events = InvalidOid;
  Oid version_index = InvalidOid;  // events_aggregate_version_key
  Oid position_seq = InvalidOid;   // events_position_seq
};
LogRelations g_log;
bool g_log_callback = false;

void ForgetEventsWriter();

void ForgetLogRelations(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_log.events || relid == g_log.version_index ||
      relid == g_log.position_seq) {
    g_log = LogRelations{};
    ForgetEventsWriter();
  }
}

const LogRelations& Log() {
  if (!g_log_callback) {
    CacheRegisterRelcacheCallback(ForgetLogRelations, (Datum)0);
    g_log_callback = true;
  }
  if (!OidIsValid(g_log.events)) {
    Oid ns = get_namespace_oid("evstream", false);
    LogRelations found;
    found.events = get_relname_relid("events", ns);
    found.version_index = get_relname_relid("events_aggregate_version_key", ns);
    found.position_seq = get_relname_relid("events_position_seq", ns);
    if (!OidIsValid(found.events) || !OidIsValid(found.version_index) || !OidIsValid(found.position_seq))
      elog(ERROR, "evstream: evstream.events, its index events_aggregate_version_key or "
                  "evstream.events_position_seq is missing");
    g_log = found;
  }
  return g_log;
}

// The aggregate's current version: its last event's, 0 when it has none. One backward step of
// events_aggregate_version_key (aggregate_type, aggregate_id, version), read with a snapshot
// taken now: under READ COMMITTED one taken after the aggregate's lock was granted (so the
// previous holder's events are seen), under REPEATABLE READ / SERIALIZABLE the transaction's
// (an append it cannot see then collides on the index and is reported as 40001, see Insert).
// latest: with the latest snapshot instead, whatever the isolation level.
int32 LastVersion(Datum aggregate_type, Datum aggregate_id, bool latest) {
  int32 version = 0;
  PgCall([&] {
    Relation heap = table_open(Log().events, AccessShareLock);
    Relation index = index_open(Log().version_index, AccessShareLock);
    if (IndexRelationGetNumberOfKeyAttributes(index) != 3 || !index->rd_index->indisunique)
      elog(ERROR, "evstream: index evstream.events_aggregate_version_key is not (aggregate_type, aggregate_id, version) unique");
    ScanKeyData keys[2];
    ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[0], F_TEXTEQ, aggregate_type);
    ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[1], F_TEXTEQ, aggregate_id);
    Snapshot snapshot = RegisterSnapshot(latest ? GetLatestSnapshot() : GetTransactionSnapshot());
    IndexScanDesc scan = index_beginscan(heap, index, snapshot, 2, 0);
    index_rescan(scan, keys, 2, nullptr, 0);
    TupleTableSlot* slot = table_slot_create(heap, nullptr);
    if (index_getnext_slot(scan, BackwardScanDirection, slot)) {
      bool isnull = false;
      Datum v = slot_getattr(slot, index->rd_index->indkey.values[2], &isnull);
      if (!isnull) version = DatumGetInt32(v);
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(index, NoLock);
    table_close(heap, NoLock);
  });
  return version;
}

// expected_version against the aggregate's current version; EV001 when they differ.
void CheckExpected(const Request& r, int32 current) {
  if (r.has_expected_version && r.expected_version != current) {
    char msg[512];
    snprintf(msg, sizeof msg, "expected version %d but aggregate %s is at version %d",
             r.expected_version, AggregateName(r).c_str(), current);
    throw Error(ss::kVersionConflict, r.label + msg, "",
                "Reload the aggregate and retry with its current version.");
  }
  if (current == INT32_MAX)
    throw Error("22003", r.label + "aggregate " + AggregateName(r) + " has reached the last version");
}

// Locks the aggregate (until the transaction ends), reads its current version from the log,
// checks expected_version and returns the next version, with the state when the aggregate type
// has a state machine.
Bumped NextVersion(const Request& r, const catalog::AggregateType& type) {
  int32 current = LockAggregate(r.aggregate_type, r.aggregate_id, r.label);
  CheckExpected(r, current);
  Bumped b{current + 1, std::nullopt};
  if (!type.HasStateMachine() || current == 0) return b;
  Datum args[2] = {Text(r.aggregate_type), Text(r.aggregate_id)};
  if (g_state.Run(args, nullptr, false, 1) == 1) {
    bool isnull = false;
    Datum state = pg::ResultValue(0, 1, &isnull);
    const char* value = nullptr;
    PgCall([&] { value = text_to_cstring(DatumGetTextPP(state)); });
    b.state = value;
  }
  return b;
}

// Allocates n positions that are consecutive: singles hold the lock shared around their
// nextval, batches exclusive, so no other append takes a value inside a batch's range.
std::vector<int64> AllocatePositions(size_t n) {
  std::vector<int64> out(n);
  if (n == 0) return out;
  Oid seq = InvalidOid;
  PgCall([&] { seq = Log().position_seq; });
  int64* slots = out.data();
  PgCall([&] {
    LWLockAcquire(doorbell::PositionLock(), n == 1 ? LW_SHARED : LW_EXCLUSIVE);
    for (size_t i = 0; i < n; i++) slots[i] = nextval_internal(seq, false);
    LWLockRelease(doorbell::PositionLock());
  });
  return out;
}

// The event-type catalog: refuse unregistered types when required, validate data against the
// type's schema (nothing has been written yet when this throws).
void CheckEventType(const Request& r) {
  std::shared_ptr<const catalog::EventType> type = catalog::LookupEventType(r.event_type);
  if (!type->registered) {
    if (catalog::g_require_registered_types)
      throw Error(ss::kUnregisteredType,
                  r.label + "event_type " + r.event_type + " is not registered",
                  "evstream.require_registered_types is on.",
                  "Register it with evstream.register_event_type.");
    return;
  }
  if (!type->schema) return;
  nlohmann::json data = pg::JsonbToJson(r.data);
  if (auto problem = type->schema->Validate(data, "data", pg::CheckForInterrupts))
    throw Error(ss::kSchemaInvalid, r.label + *problem,
                std::string("The data does not match the schema of event type ") + r.event_type + ".");
}

// The state machine: the aggregate's next state (stored on its row), or EV004.
std::optional<std::string> Advance(const Request& r, const catalog::AggregateType& type,
                                   const Bumped& b) {
  if (!type.HasStateMachine()) return b.state;
  std::optional<std::string> from = b.version == 1 ? std::nullopt : b.state;
  std::string to = projection::Transition(type, r.aggregate_id, from, r.event_type, r.label);
  if (to != b.state) {
    Datum args[4] = {Text(r.aggregate_type), Text(r.aggregate_id), Text(to.c_str()), Text(r.channel)};
    g_set_state.Run(args, nullptr, false);
  }
  return to;
}

// The log's columns in the order WriteRow supplies them (g_insert's parameters, plus id and tx),
// the CHECK constraints ValidateRequest enforces before a row is written (channel pattern,
// version > 0, data and metadata objects), and the log's one partial index.
pg::RowInserter g_events_writer(
    {{"position", INT8OID}, {"id", UUIDOID}, {"tx", XID8OID}, {"channel", TEXTOID},
     {"aggregate_type", TEXTOID}, {"aggregate_id", TEXTOID}, {"version", INT4OID},
     {"event_type", TEXTOID}, {"data", JSONBOID}, {"metadata", JSONBOID}, {"display", JSONBOID},
     {"created_by", TEXTOID}, {"created_at", TIMESTAMPTZOID}, {"correlation_id", UUIDOID},
     {"causation_id", UUIDOID}, {"idempotency_key", TEXTOID}, {"order_key", INT8OID}},
    {"events_channel_check", "events_version_check", "events_data_object", "events_metadata_object"},
    {"events_idempotency_key", "events_correlation_idx"});
WritePaths g_paths;

void ForgetEventsWriter() { g_events_writer.Forget(); }

// Writes the row: directly (no executor, see pg/row_insert.hpp) while evstream.events is as
// evstream made it, through g_insert otherwise.
Datum WriteRow(Datum* args, char* nulls) {
  Datum row = 0;
  bool direct = false;
  PgCall([&] {
    Relation rel = table_open(Log().events, RowExclusiveLock);
    Datum values[17];
    bool isnull[17];
    values[0] = args[0];
    isnull[0] = false;
    values[1] = OidFunctionCall0Coll(F_GEN_RANDOM_UUID, InvalidOid);
    isnull[1] = false;
    values[2] = FullTransactionIdGetDatum(GetTopFullTransactionId());
    isnull[2] = false;
    for (int i = 1; i <= 9; i++) {  // channel .. created_by
      values[i + 2] = args[i];
      isnull[i + 2] = nulls[i] == 'n';
    }
    values[12] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    isnull[12] = false;
    for (int i = 10; i <= 13; i++) {  // correlation_id .. order_key
      values[i + 3] = args[i];
      isnull[i + 3] = nulls[i] == 'n';
    }
    direct = g_events_writer.Insert(rel, values, isnull, &row);
    table_close(rel, NoLock);
  });
  if (direct) {
    g_paths.direct++;
    return row;
  }
  g_paths.through_sql++;
  g_insert.Run(args, nulls, false, 1);
  bool isnull = false;
  row = pg::ResultValue(0, 1, &isnull);
  // Visible to what follows in this call (the next event's version probe reads no SQL).
  PgCall([] { CommandCounterIncrement(); });
  return row;
}

Datum Insert(const Request& r, int64 position, int32 version, int64 order_key) {
  Datum args[14] = {Int64GetDatum(position), Text(r.channel), Text(r.aggregate_type),
                    Text(r.aggregate_id), Int32GetDatum(version), Text(r.event_type),
                    JsonbPGetDatum(r.data), r.metadata ? JsonbPGetDatum(r.metadata) : (Datum)0,
                    r.display ? JsonbPGetDatum(r.display) : (Datum)0, Text(r.created_by),
                    r.correlation_id, r.causation_id, Text(r.idempotency_key),
                    Int64GetDatum(order_key)};
  char nulls[14];
  memset(nulls, ' ', sizeof nulls);
  if (!r.metadata) nulls[7] = 'n';
  if (!r.display) nulls[8] = 'n';
  if (!r.has_correlation_id) nulls[10] = 'n';
  if (!r.has_causation_id) nulls[11] = 'n';
  if (!r.idempotency_key) nulls[12] = 'n';
  Datum empty = 0;
  if (!r.metadata) {
    PgCall([&] { empty = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")); });
    args[7] = empty;
    nulls[7] = ' ';
  }
  try {
    return WriteRow(args, nulls);
  } catch (const pg::PgException& e) {
    // Under REPEATABLE READ / SERIALIZABLE a racing session's committed event with this key is
    // invisible to our snapshot: report the race as the retryable 40001, never as 23505.
    // Likewise a version taken by an append our snapshot cannot see (the aggregate lock makes
    // this impossible under READ COMMITTED).
    ErrorData* d = e.data();
    if (d->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && d->constraint_name != nullptr &&
        strcmp(d->constraint_name, "events_aggregate_version_key") == 0)
      throw Error("40001",
                  r.label + "could not serialize access: aggregate " + AggregateName(r) +
                      " was appended to concurrently",
                  "", "Retry the transaction: the retry appends the next version.");
    if (d->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && d->constraint_name != nullptr &&
        strcmp(d->constraint_name, "events_idempotency_key") == 0)
      throw Error("40001",
                  r.label + "could not serialize access: idempotency_key \"" +
                      (r.idempotency_key ? r.idempotency_key : "") + "\" was used concurrently on " +
                      r.channel,
                  "", "Retry the transaction: the retry returns the original event or EV002.");
    throw;
  }
}

}  // namespace

WritePaths Paths() { return g_paths; }

int32 LockAggregate(const char* aggregate_type, const char* aggregate_id, const std::string& label) {
  aggregate_lock::Lock(aggregate_type, aggregate_id);
  Datum type = Text(aggregate_type);
  Datum id = Text(aggregate_id);
  int32 current = LastVersion(type, id, false);
  if (IsolationUsesXactSnapshot() && LastVersion(type, id, true) != current)
    throw Error("40001",
                label + "could not serialize access: aggregate " + aggregate_type + "/" +
                    aggregate_id + " was appended to or erased concurrently",
                "", "Retry the transaction.");
  return current;
}

std::vector<Datum> Append(std::vector<Request>& requests) {
  if (!doorbell::Preloaded())
    throw Error("55000", "evstream is not loaded through shared_preload_libraries", "",
                "Add evstream to shared_preload_libraries and restart PostgreSQL.");
  for (Request& r : requests) {
    ValidateRequest(r);
    // The one identity rule: created_by as stored, or 42501 (see security::Creator).
    std::string creator = security::Creator(r.created_by, r.label);
    PgCall([&] { r.created_by = pstrdup(creator.c_str()); });
  }
  {
    std::set<std::pair<std::string, std::string>> keys;
    for (const Request& r : requests)
      if (r.idempotency_key && !keys.emplace(r.channel, r.idempotency_key).second)
        throw Error(ss::kInvalidParameter,
                    r.label + "idempotency_key repeats an earlier event of the same batch");
  }

  std::vector<Datum> rows(requests.size(), (Datum)0);
  pg::SpiSession spi;
  security::CheckWriteChannels(requests);
  // 1. Replays: events already appended under the same key are returned as they are.
  std::vector<size_t> fresh;
  for (size_t i = 0; i < requests.size(); i++) {
    std::optional<Datum> original;
    if (requests[i].idempotency_key) original = FindByKey(requests[i]);
    if (original) {
      PgCall([&] { rows[i] = SPI_datumTransfer(*original, false, -1); });
    } else {
      fresh.push_back(i);
    }
  }
  for (size_t i : fresh) CheckEventType(requests[i]);
  // 2. Versions (aggregate locks, taken in request order) and state-machine steps.
  std::vector<int32> versions;
  std::vector<std::shared_ptr<catalog::AggregateType>> types;
  std::vector<std::optional<std::string>> states;
  versions.reserve(fresh.size());
  // An aggregate's later events in the batch follow its earlier ones (not in the log yet).
  std::map<std::pair<std::string, std::string>, Bumped> batch_heads;
  for (size_t i : fresh) {
    const Request& r = requests[i];
    types.push_back(catalog::LookupAggregateType(r.aggregate_type));
    auto head = fresh.size() > 1 ? batch_heads.find({r.aggregate_type, r.aggregate_id})
                                 : batch_heads.end();
    Bumped b;
    if (head == batch_heads.end()) {
      b = NextVersion(r, *types.back());
    } else {
      CheckExpected(r, head->second.version);
      b = Bumped{head->second.version + 1, head->second.state};
    }
    versions.push_back(b.version);
    states.push_back(Advance(r, *types.back(), b));
    if (fresh.size() > 1) batch_heads[{r.aggregate_type, r.aggregate_id}] = Bumped{b.version, states.back()};
  }
  // 3. The transaction's order key (registering it as an open appender at its first append:
  // from here until it ends it holds back the events that sort after it), positions
  // consecutive for the whole batch, then the rows themselves.
  int64 order_key = fresh.empty() ? 0 : horizon::KeyForAppend();
  std::vector<int64> positions = AllocatePositions(fresh.size());
  for (size_t k = 0; k < fresh.size(); k++) {
    Datum row = Insert(requests[fresh[k]], positions[k], versions[k], order_key);
    PgCall([&] { rows[fresh[k]] = SPI_datumTransfer(row, false, -1); });
  }
  // 4. Projections, in the same transaction: a failure here aborts the append.
  // The target is the caller's table: its triggers, types and defaults run with the caller's
  // rights, never the owner's (the caller needs INSERT and UPDATE on it).
  // Their input functions, domain checks, defaults and triggers are the caller's code: the fixed
  // search path is set before any of it runs (so it never depends on whether this call happened
  // to run SQL earlier, and is set at this call's own GUC level).
  for (size_t k = 0; k < fresh.size(); k++) {
    if (!types[k]->HasProjection()) continue;
    PgCall([] { pg::EnsureFixedSearchPath(); });
    const Request& r = requests[fresh[k]];
    pg::RunAs(security::Caller(), [&] {
      projection::Row target(*types[k]);
      target.Apply(r.data);
      target.Write(r.aggregate_id, versions[k], GetCurrentTransactionStartTimestamp(), states[k]);
    });
  }
  if (!fresh.empty()) PgCall([] { doorbell::MarkAppended(); });
  spi.Finish();
  return rows;
}

}  // namespace evstream::append
