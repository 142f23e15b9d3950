// The event-type catalog and the per-aggregate-type configuration (projection target, state
// machine), cached per backend. The caches are dropped when a catalog table or a projection
// target changes: a statement trigger on the catalog tables sends a relcache invalidation (so
// every backend hears it at its next transaction), and the relcache callback only marks the
// caches stale; they are cleared at the next lookup, never under a caller's feet (entries are
// shared_ptr, so a caller holding one keeps it valid).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "evstream/json_schema.hpp"

extern "C" {
#include "postgres.h"
#include "executor/spi.h"  // SPIPlanPtr
#include "fmgr.h"          // FmgrInfo
#include "utils/jsonb.h"   // Jsonb
}

namespace evstream::catalog {

extern bool g_require_registered_types;  // GUC evstream.require_registered_types

struct EventType {
  bool registered = false;
  std::optional<json_schema::Schema> schema;
};

// A column of a projection target.
struct Column {
  std::string name;  // unquoted
  int attnum = 0;
  Oid type = InvalidOid;
  int32 typmod = -1;
  Oid typioparam = InvalidOid;
  FmgrInfo input{};  // the type's input function (fn_mcxt = the cache's context)
  int16 typlen = -1;
  bool typbyval = false;
};

struct AggregateType {
  std::string aggregate_type;
  // Projection (target == InvalidOid when none).
  Oid target = InvalidOid;
  std::string target_sql;            // quoted, schema-qualified
  Column key;                        // key_column, set from aggregate_id
  std::vector<Column> data_columns;  // set from same-named top-level keys of data
  std::optional<Column> version, updated_at, status;  // maintained columns, when present
  // Kept plans, one per set of data columns: single-row upserts, and rebuild's multi-row inserts.
  mutable std::unordered_map<uint64_t, SPIPlanPtr> upserts;
  mutable std::unordered_map<uint64_t, SPIPlanPtr> batch_upserts;
  // State machine: "<from or \x01 for none>\x1f<event_type>" -> to_state.
  std::map<std::string, std::string> transitions;

  bool HasProjection() const { return target != InvalidOid; }
  bool HasStateMachine() const { return !transitions.empty(); }
  // The next state, or nullopt when no declared transition matches.
  std::optional<std::string> Next(const std::optional<std::string>& from,
                                  const std::string& event_type) const;
  ~AggregateType();
};

// Registers the relcache callback (from _PG_init).
void Init();

// Lookups; call inside an SPI session. Throw evstream::Error / PgException.
std::shared_ptr<const EventType> LookupEventType(const std::string& event_type);
std::shared_ptr<AggregateType> LookupAggregateType(const std::string& aggregate_type);

// evstream.register_event_type: compiles the schema (refusing invalid ones), checks the
// example against it, and upserts the catalog row.
void RegisterEventType(const char* event_type, Jsonb* schema, const char* description,
                       Jsonb* example);

// The statement trigger on the catalog tables: invalidate every backend's caches.
void CatalogChanged(Oid relid);

}  // namespace evstream::catalog
