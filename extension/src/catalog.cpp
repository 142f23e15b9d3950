// Event-type catalog and aggregate-type configuration caches (see catalog.hpp).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include <unordered_set>
#include <utility>

#include "catalog.hpp"

#include "evstream/error.hpp"
#include "evstream/validate.hpp"
#include "pg/interrupts.hpp"
#include "pg/jsonb_json.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"   // TEXTOID, OIDOID
#include "utils/array.h"       // deconstruct_array
#include "utils/builtins.h"    // CStringGetTextDatum, text_to_cstring
#include "utils/inval.h"       // CacheRegisterRelcacheCallback, CacheInvalidateRelcacheByRelid
#include "utils/lsyscache.h"   // getTypeInputInfo
#include "utils/memutils.h"    // AllocSetContextCreate, TopMemoryContext
}

namespace evstream::catalog {

bool g_require_registered_types = false;

namespace {

using pg::KeptPlan;
using pg::PgCall;
namespace ss = evstream::sqlstate;

KeptPlan g_event_type(
    "SELECT schema FROM evstream.event_types WHERE event_type OPERATOR(pg_catalog.=) $1", {TEXTOID});
KeptPlan g_projection(
    "SELECT p.target::pg_catalog.oid, p.key_column::pg_catalog.text, p.status_column::pg_catalog.text,"
    "       CASE WHEN c.oid IS NOT NULL THEN pg_catalog.format('%I.%I', n.nspname, c.relname) END"
    "  FROM evstream.projections p"
    "  LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.target::pg_catalog.oid"
    "  LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
    " WHERE p.aggregate_type OPERATOR(pg_catalog.=) $1",
    {TEXTOID});
KeptPlan g_columns(
    "SELECT a.attname::pg_catalog.text, a.attnum::pg_catalog.int4, a.atttypid, a.atttypmod FROM pg_catalog.pg_attribute a"
    " WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0"
    "   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''"
    "   AND a.attidentity OPERATOR(pg_catalog.<>) 'a' ORDER BY a.attnum",
    {OIDOID});
KeptPlan g_transitions(
    "SELECT from_state, event_type, to_state FROM evstream.transitions"
    " WHERE aggregate_type OPERATOR(pg_catalog.=) $1",
    {TEXTOID});
KeptPlan g_catalog_oids(
    "SELECT pg_catalog.array_agg(c.oid) FROM pg_catalog.pg_class c"
    " WHERE c.relnamespace OPERATOR(pg_catalog.=) 'evstream'::pg_catalog.regnamespace"
    "   AND c.relname OPERATOR(pg_catalog.=) ANY ('{event_types,projections,transitions}'::pg_catalog.name[])",
    {});
KeptPlan g_register(
    "INSERT INTO evstream.event_types AS t (event_type, schema, description, example)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (event_type) DO UPDATE"
    " SET schema = EXCLUDED.schema, description = EXCLUDED.description,"
    "     example = EXCLUDED.example, updated_at = pg_catalog.now()",
    {TEXTOID, JSONBOID, TEXTOID, JSONBOID});

// Per-backend caches. STL on purpose: entries hold compiled schemas (C++ objects); the memory
// PostgreSQL needs (FmgrInfo extras, plans) lives in each entry's own memory context.
std::unordered_map<std::string, std::shared_ptr<const EventType>> g_event_types;
std::unordered_map<std::string, std::shared_ptr<AggregateType>> g_aggregate_types;
std::unordered_set<Oid> g_watched;  // catalog tables and projection targets
bool g_stale = false;
bool g_catalog_known = false;

// Relcache callback: may run inside any PostgreSQL call, so it only raises a flag.
void OnRelcache(Datum, Oid relid) {
  if (relid == InvalidOid || g_watched.count(relid) != 0) g_stale = true;
}

void DropIfStale() {
  if (!g_stale) return;
  g_stale = false;
  g_event_types.clear();
  g_aggregate_types.clear();
  g_watched.clear();
  g_catalog_known = false;
}

void WatchCatalog() {
  if (g_catalog_known) return;
  if (g_catalog_oids.Run(nullptr, nullptr, true, 1) == 1) {
    bool isnull = false;
    Datum arr = pg::ResultValue(0, 1, &isnull);
    if (!isnull) {
      Datum* elems = nullptr;
      int n = 0;
      PgCall([&] {
        deconstruct_array(DatumGetArrayTypeP(arr), OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems,
                          nullptr, &n);
      });
      for (int i = 0; i < n; i++) g_watched.insert(DatumGetObjectId(elems[i]));
    }
  }
  g_catalog_known = true;
}

const char* TextAt(uint64_t row, int col) {
  bool isnull = false;
  Datum d = pg::ResultValue(row, col, &isnull);
  if (isnull) return nullptr;
  const char* out = nullptr;
  PgCall([&] { out = text_to_cstring(DatumGetTextPP(d)); });
  return out;
}

std::string TransitionKey(const std::optional<std::string>& from, const std::string& event_type) {
  return (from ? *from : std::string("\x01")) + '\x1f' + event_type;
}

// Loads the projection part of an aggregate type's configuration.
void LoadProjection(AggregateType* a, MemoryContext cxt) {
  Datum arg = CStringGetTextDatum(a->aggregate_type.c_str());
  if (g_projection.Run(&arg, nullptr, true, 1) == 0) return;
  bool isnull = false;
  a->target = DatumGetObjectId(pg::ResultValue(0, 1, &isnull));
  std::string key_name = TextAt(0, 2), status_name = TextAt(0, 3);
  const char* target_sql = TextAt(0, 4);
  if (target_sql == nullptr)
    throw Error(ss::kInvalidParameter,
                "the projection target of " + a->aggregate_type + " (oid " +
                    std::to_string(a->target) + ") no longer exists",
                "", "Register a new target with evstream.project_into, or remove the projection: "
                    "SELECT evstream.remove_projection('" + a->aggregate_type + "').");
  a->target_sql = target_sql;
  Datum rel = ObjectIdGetDatum(a->target);
  uint64_t n = g_columns.Run(&rel, nullptr, true);
  SPITupleTable* table = SPI_tuptable;
  bool have_key = false;
  for (uint64_t i = 0; i < n; i++) {
    SPI_tuptable = table;
    Column c;
    c.name = TextAt(i, 1);
    c.attnum = DatumGetInt32(pg::ResultValue(i, 2, &isnull));
    c.type = DatumGetObjectId(pg::ResultValue(i, 3, &isnull));
    c.typmod = DatumGetInt32(pg::ResultValue(i, 4, &isnull));
    PgCall([&] {
      Oid func;
      getTypeInputInfo(c.type, &func, &c.typioparam);
      get_typlenbyval(c.type, &c.typlen, &c.typbyval);
      fmgr_info_cxt(func, &c.input, cxt);
    });
    if (c.name == key_name) {
      a->key = c;
      have_key = true;
    } else if (c.name == "version") {
      a->version = c;
    } else if (c.name == "updated_at") {
      a->updated_at = c;
    } else if (c.name == status_name && a->HasStateMachine()) {
      a->status = c;
    } else {
      a->data_columns.push_back(c);
    }
  }
  if (!have_key)
    throw Error(ss::kInvalidParameter,
                "projection of " + a->aggregate_type + " into " + a->target_sql +
                    ": key column \"" + key_name + "\" does not exist",
                "", "Register the projection again with evstream.project_into.");
  if (a->data_columns.size() > 64)
    throw Error(ss::kInvalidParameter,
                "projection target " + a->target_sql + " has more than 64 columns");
  g_watched.insert(a->target);
}

// A schema refused by the validator, with the SQLSTATE that fits its kind.
Error SchemaError(const char* event_type, const json_schema::InvalidSchema& e) {
  using Kind = json_schema::InvalidSchema::Kind;
  const char* code = e.kind() == Kind::kPattern    ? ss::kInvalidRegularExpression
                     : e.kind() == Kind::kTooLarge ? ss::kProgramLimitExceeded
                                                   : ss::kInvalidParameter;
  const char* hint = e.kind() == Kind::kPattern
                         ? "Patterns run on RE2: rewrite without backreferences or lookaround."
                         : "Supported keywords and limits are listed in the README.";
  return Error(code, std::string("invalid schema for event type ") + event_type + ": " + e.what(),
               "", hint);
}

}  // namespace

std::optional<std::string> AggregateType::Next(const std::optional<std::string>& from,
                                               const std::string& event_type) const {
  auto it = transitions.find(TransitionKey(from, event_type));
  if (it == transitions.end()) return std::nullopt;
  return it->second;
}

AggregateType::~AggregateType() {
  for (auto& [mask, plan] : upserts) SPI_freeplan(plan);
  for (auto& [mask, plan] : batch_upserts) SPI_freeplan(plan);
}

void Init() { CacheRegisterRelcacheCallback(OnRelcache, (Datum)0); }

std::shared_ptr<const EventType> LookupEventType(const std::string& event_type) {
  DropIfStale();
  auto it = g_event_types.find(event_type);
  if (it != g_event_types.end()) return it->second;
  WatchCatalog();
  auto entry = std::make_shared<EventType>();
  Datum arg = CStringGetTextDatum(event_type.c_str());
  if (g_event_type.Run(&arg, nullptr, true, 1) == 1) {
    entry->registered = true;
    bool isnull = false;
    Datum schema = pg::ResultValue(0, 1, &isnull);
    if (!isnull) {
      Jsonb* j = nullptr;
      PgCall([&] { j = DatumGetJsonbP(schema); });
      try {
        entry->schema = json_schema::Schema::Compile(pg::JsonbToJson(j));
      } catch (const json_schema::InvalidSchema& e) {
        throw SchemaError(event_type.c_str(), e);  // registered before today's bounds
      }
    }
  }
  g_event_types.emplace(event_type, entry);
  return entry;
}

std::shared_ptr<AggregateType> LookupAggregateType(const std::string& aggregate_type) {
  DropIfStale();
  auto it = g_aggregate_types.find(aggregate_type);
  if (it != g_aggregate_types.end()) return it->second;
  WatchCatalog();
  // The entry's PostgreSQL memory (FmgrInfo extras) lives as long as the entry.
  MemoryContext cxt = nullptr;
  PgCall([&] {
    cxt = AllocSetContextCreate(TopMemoryContext, "evstream aggregate type", ALLOCSET_SMALL_SIZES);
  });
  std::shared_ptr<AggregateType> entry(new AggregateType(), [cxt](AggregateType* a) {
    delete a;
    MemoryContextDelete(cxt);
  });
  entry->aggregate_type = aggregate_type;
  Datum arg = CStringGetTextDatum(aggregate_type.c_str());
  uint64_t n = g_transitions.Run(&arg, nullptr, true);
  for (uint64_t i = 0; i < n; i++) {
    const char* from = TextAt(i, 1);
    std::optional<std::string> f;
    if (from) f = from;
    entry->transitions[TransitionKey(f, TextAt(i, 2))] = TextAt(i, 3);
  }
  LoadProjection(entry.get(), cxt);
  g_aggregate_types.emplace(aggregate_type, entry);
  return entry;
}

void RegisterEventType(const char* event_type, Jsonb* schema, const char* description,
                       Jsonb* example) {
  if (event_type == nullptr) throw Error(ss::kNullValue, "event_type must not be null");
  if (auto problem = validate::EventType("event_type", event_type))
    throw Error(ss::kInvalidParameter, *problem);
  std::optional<json_schema::Schema> compiled;
  if (schema != nullptr) {
    try {
      compiled = json_schema::Schema::Compile(pg::JsonbToJson(schema));
    } catch (const json_schema::InvalidSchema& e) {
      throw SchemaError(event_type, e);
    }
  }
  if (example != nullptr) {
    nlohmann::json ex = pg::JsonbToJson(example);
    if (!ex.is_object()) throw Error(ss::kInvalidParameter, "example must be a JSON object");
    if (compiled)
      if (auto problem = compiled->Validate(ex, "example", pg::CheckForInterrupts))
        throw Error(sqlstate::kSchemaInvalid,
                    std::string("example does not match the schema of ") + event_type + ": " +
                        *problem);
  }
  pg::SpiSession spi;
  Datum args[4] = {CStringGetTextDatum(event_type), schema ? JsonbPGetDatum(schema) : (Datum)0,
                   description ? CStringGetTextDatum(description) : (Datum)0,
                   example ? JsonbPGetDatum(example) : (Datum)0};
  char nulls[4] = {' ', schema ? ' ' : 'n', description ? ' ' : 'n', example ? ' ' : 'n'};
  g_register.Run(args, nulls, false);
  spi.Finish();
}

void CatalogChanged(Oid relid) {
  PgCall([&] { CacheInvalidateRelcacheByRelid(relid); });
}

}  // namespace evstream::catalog
