// Jsonb -> nlohmann::json without going through text: the JSON Schema validator and state_at
// work on nlohmann values.
#pragma once

#include <nlohmann/json.hpp>

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"  // Jsonb
}

namespace evstream::pg {

// Walks the Jsonb with JsonbIterator (under PgCall, collecting plain tokens), then builds the
// nlohmann value outside any PG_TRY. Throws PgException or std::exception.
nlohmann::json JsonbToJson(Jsonb* jsonb);

// nlohmann::json -> Jsonb (through jsonb_in; used off the hot path).
Jsonb* JsonToJsonb(const nlohmann::json& value);

}  // namespace evstream::pg
