// rebuild and state_at (see rebuild.hpp). Both fold events with the rules of the append path:
// later keys win, the state machine moves on declared transitions. Replaying, an event that
// matches no declared transition (the rules were declared after it was appended) leaves the
// state as it was instead of failing: the log is history, not a request.
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include "rebuild.hpp"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "catalog.hpp"
#include "evstream/error.hpp"
#include "pg/jsonb_json.hpp"
#include "pg/spi.hpp"
#include "pg/user.hpp"
#include "projection.hpp"
#include "security.hpp"

extern "C" {
#include "catalog/pg_type.h"  // TEXTOID, INT4OID, TIMESTAMPTZOID
#include "utils/array.h"      // construct_array
#include "utils/builtins.h"   // CStringGetTextDatum, text_to_cstring
#include "utils/memutils.h"   // AllocSetContextCreate
#include "utils/portal.h"     // Portal
}

namespace evstream::rebuild {
namespace {

using pg::KeptPlan;
using pg::PgCall;
namespace ss = evstream::sqlstate;

constexpr long kBatch = 5000;

// The definer (extension owner) while rebuild runs: evstream's own tables are written as it,
// the projection target as the caller.
Oid g_owner = InvalidOid;

const char* kReplaySql =
    "SELECT aggregate_id, version, event_type, data, created_at FROM evstream.events"
    " WHERE aggregate_type OPERATOR(pg_catalog.=) $1 ORDER BY aggregate_id, version";
SPIPlanPtr g_replay = nullptr;

// States are written back in bulk, one statement per kBatch aggregates.
// channel: the aggregate's first event's.
KeptPlan g_set_states(
    "INSERT INTO evstream.aggregate_states AS a (aggregate_type, aggregate_id, state, channel)"
    " SELECT $1, u.id, u.state, f.channel"
    "   FROM unnest($2::text[], $3::text[]) AS u(id, state)"
    "   JOIN evstream.events f ON f.aggregate_type = $1 AND f.aggregate_id = u.id AND f.version = 1"
    " ON CONFLICT (aggregate_type, aggregate_id)"
    " DO UPDATE SET state = EXCLUDED.state, updated_at = pg_catalog.now()"
    " WHERE a.state IS DISTINCT FROM EXCLUDED.state",
    {TEXTOID, TEXTARRAYOID, TEXTARRAYOID});
KeptPlan g_history(
    "SELECT version, event_type, data, to_jsonb(created_at) FROM evstream.events"
    " WHERE aggregate_type = $1 AND aggregate_id = $2"
    "   AND ($3::int IS NULL OR version <= $3) AND ($4::timestamptz IS NULL OR created_at <= $4)"
    " ORDER BY version",
    {TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID});

// One step of the state machine while replaying.
std::optional<std::string> Step(const catalog::AggregateType& type, int32 version,
                                const std::optional<std::string>& state, const char* event_type) {
  if (!type.HasStateMachine()) return state;
  std::optional<std::string> from = version == 1 ? std::nullopt : state;
  if (auto next = type.Next(from, event_type)) return next;
  return state;
}

// Writes the collected (aggregate_id, state) pairs to evstream.aggregate_states and clears them.
void WriteStates(Datum aggregate_type, std::vector<std::string>* ids,
                 std::vector<std::string>* states) {
  if (ids->empty()) return;
  size_t n = ids->size();
  Datum arrays[2];
  PgCall([&] {
    Datum* id_datums = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* state_datums = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    for (size_t i = 0; i < n; i++) {
      id_datums[i] = CStringGetTextDatum((*ids)[i].c_str());
      state_datums[i] = CStringGetTextDatum((*states)[i].c_str());
    }
    arrays[0] = PointerGetDatum(construct_array(id_datums, static_cast<int>(n), TEXTOID, -1, false, TYPALIGN_INT));
    arrays[1] = PointerGetDatum(construct_array(state_datums, static_cast<int>(n), TEXTOID, -1, false, TYPALIGN_INT));
  });
  Datum args[3] = {aggregate_type, arrays[0], arrays[1]};
  pg::RunAs(g_owner, [&] { g_set_states.Run(args, nullptr, false); });
  ids->clear();
  states->clear();
}

const char* Text(Datum d) {
  const char* out = nullptr;
  PgCall([&] { out = text_to_cstring(DatumGetTextPP(d)); });
  return out;
}

}  // namespace

int64 Replay(const catalog::AggregateType& type, Portal portal, MemoryContext batch_cxt, Datum arg);

int64 Rebuild(const char* aggregate_type) {
  if (!aggregate_type) throw Error(ss::kNullValue, "aggregate_type must not be null");
  pg::SpiSession spi;
  std::shared_ptr<catalog::AggregateType> type = catalog::LookupAggregateType(aggregate_type);
  if (!type->HasProjection())
    throw Error(ss::kInvalidParameter,
                std::string("aggregate type ") + aggregate_type + " has no projection", "",
                "Register one with evstream.project_into(aggregate_type, target).");
  std::string truncate = "TRUNCATE " + type->target_sql;
  const char* truncate_sql = truncate.c_str();
  Datum arg = CStringGetTextDatum(aggregate_type);
  Portal portal = nullptr;
  MemoryContext batch_cxt = nullptr;
  g_owner = GetUserId();
  Oid caller = security::Caller();
  // The target is the caller's table: TRUNCATE and the upserts run with the caller's rights
  // (its triggers never run as the owner); the caller needs TRUNCATE, INSERT and UPDATE on it.
  pg::RunAs(caller, [&] {
    PgCall([&] {
      int rc = SPI_execute(truncate_sql, false, 0);
      if (rc < 0) elog(ERROR, "evstream: %s failed: %s", truncate_sql, SPI_result_code_string(rc));
    });
  });
  PgCall([&] {
    if (g_replay == nullptr) {
      Oid types[1] = {TEXTOID};
      SPIPlanPtr plan = SPI_prepare(kReplaySql, 1, types);
      if (plan == nullptr) elog(ERROR, "evstream: cannot prepare the replay query");
      SPI_keepplan(plan);
      g_replay = plan;
    }
    portal = SPI_cursor_open(nullptr, g_replay, &arg, nullptr, true);
    batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "evstream replay batch",
                                      ALLOCSET_DEFAULT_SIZES);
  });

  int64 replayed = pg::RunAs(caller, [&] { return Replay(*type, portal, batch_cxt, arg); });
  PgCall([&] {
    SPI_cursor_close(portal);
    MemoryContextDelete(batch_cxt);
  });
  spi.Finish();
  return replayed;
}

// Folds the cursor's events (ordered by aggregate, version) into the target, one upsert per
// aggregate. The Row's memory lives inside the SPI session, so it must end before SPI_finish.
int64 Replay(const catalog::AggregateType& type_ref, Portal portal, MemoryContext batch_cxt, Datum arg) {
  const catalog::AggregateType* type = &type_ref;
  projection::Row row(*type);
  projection::Batch batch(*type);
  std::string current;  // aggregate being folded
  bool have_current = false;
  int32 version = 0;
  TimestampTz at = 0;
  std::optional<std::string> state;
  int64 replayed = 0;
  std::vector<std::string> state_ids, state_values;
  auto flush = [&] {
    if (!have_current) return;
    batch.Add(row, current.c_str(), version, at, state);
    if (type->HasStateMachine() && state) {
      state_ids.push_back(current);
      state_values.push_back(*state);
      if (state_ids.size() >= static_cast<size_t>(kBatch)) WriteStates(arg, &state_ids, &state_values);
    }
    row.Reset();
  };

  for (;;) {
    SPITupleTable* table = nullptr;
    uint64_t n = 0;
    PgCall([&] {
      SPI_cursor_fetch(portal, true, kBatch);
      table = SPI_tuptable;
      n = SPI_processed;
    });
    if (n == 0) break;
    for (uint64_t i = 0; i < n; i++) {
      HeapTuple tuple = table->vals[i];
      TupleDesc desc = table->tupdesc;
      bool isnull = false;
      Datum id_datum = SPI_getbinval(tuple, desc, 1, &isnull);
      const char* id = nullptr;
      Jsonb* data = nullptr;
      PgCall([&] {
        MemoryContext old = MemoryContextSwitchTo(batch_cxt);
        id = text_to_cstring(DatumGetTextPP(id_datum));
        data = DatumGetJsonbP(SPI_getbinval(tuple, desc, 4, &isnull));
        MemoryContextSwitchTo(old);
      });
      if (!have_current || current != id) {
        flush();
        current = id;
        have_current = true;
        state.reset();
      }
      version = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
      at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 5, &isnull));
      const char* event_type = nullptr;
      PgCall([&] {
        MemoryContext old = MemoryContextSwitchTo(batch_cxt);
        event_type = text_to_cstring(DatumGetTextPP(SPI_getbinval(tuple, desc, 3, &isnull)));
        MemoryContextSwitchTo(old);
      });
      state = Step(*type, version, state, event_type);
      row.Apply(data);
      replayed++;
    }
    PgCall([&] {
      SPI_freetuptable(table);
      MemoryContextReset(batch_cxt);
    });
  }
  flush();
  batch.Flush();
  WriteStates(arg, &state_ids, &state_values);
  return replayed;
}

Jsonb* StateAt(const char* aggregate_type, const char* aggregate_id, const int32* at_version,
               const TimestampTz* at_time) {
  if (!aggregate_type || !aggregate_id)
    throw Error(ss::kNullValue, "aggregate_type and aggregate_id must not be null");
  pg::SpiSession spi;
  std::shared_ptr<catalog::AggregateType> type = catalog::LookupAggregateType(aggregate_type);
  Datum args[4] = {CStringGetTextDatum(aggregate_type), CStringGetTextDatum(aggregate_id),
                   at_version ? Int32GetDatum(*at_version) : (Datum)0,
                   at_time ? TimestampTzGetDatum(*at_time) : (Datum)0};
  char nulls[4] = {' ', ' ', at_version ? ' ' : 'n', at_time ? ' ' : 'n'};
  uint64_t n = g_history.Run(args, nulls, true);
  if (n == 0) {
    spi.Finish();
    return nullptr;
  }
  std::set<std::string> columns;
  for (const catalog::Column& c : type->data_columns) columns.insert(c.name);
  nlohmann::json folded = nlohmann::json::object();
  std::optional<std::string> state;
  int32 version = 0;
  nlohmann::json at;
  for (uint64_t i = 0; i < n; i++) {
    bool isnull = false;
    version = DatumGetInt32(pg::ResultValue(i, 1, &isnull));
    state = Step(*type, version, state, Text(pg::ResultValue(i, 2, &isnull)));
    Jsonb* data = nullptr;
    Jsonb* created = nullptr;
    PgCall([&] {
      data = DatumGetJsonbP(pg::ResultValue(i, 3, &isnull));
      created = DatumGetJsonbP(pg::ResultValue(i, 4, &isnull));
    });
    nlohmann::json fields = pg::JsonbToJson(data);
    for (auto& [key, value] : fields.items())
      if (!type->HasProjection() || columns.count(key)) folded[key] = value;
    at = pg::JsonbToJson(created);
  }
  if (type->HasProjection()) {
    folded[type->key.name] = aggregate_id;
    if (type->version) folded[type->version->name] = version;
    if (type->updated_at) folded[type->updated_at->name] = at;
    if (type->status) folded[type->status->name] = state ? nlohmann::json(*state) : nlohmann::json();
  } else {
    folded["version"] = version;
    folded["updated_at"] = at;
    if (type->HasStateMachine()) folded["status"] = state ? nlohmann::json(*state) : nlohmann::json();
  }
  Jsonb* result = pg::JsonToJsonb(folded);
  PgCall([&] { result = DatumGetJsonbP(SPI_datumTransfer(JsonbPGetDatum(result), false, -1)); });
  spi.Finish();
  return result;
}

}  // namespace evstream::rebuild
