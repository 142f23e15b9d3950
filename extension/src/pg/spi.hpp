// SPI plans prepared once per backend and kept (SPI_keepplan), executed through PgCall so a
// PostgreSQL error becomes a C++ exception. Call only between SPI_connect and SPI_finish.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "guard.hpp"

extern "C" {
#include "executor/spi.h"  // SPI_prepare, SPI_execute_plan
#include "utils/tuplestore.h"  // Tuplestorestate
}

namespace evstream::pg {

// How a kept plan is planned: kAuto lets the plan cache choose per execution (custom plans
// while they look cheaper); kGeneric plans once for any parameters. Use kGeneric when the
// generic plan is the right one whatever the values (an index walk with both bounds as index
// conditions): the plan cache keeps re-planning a query whose custom plans are estimated much
// cheaper than its generic one, though they run the same way.
enum class Planning { kAuto, kGeneric };

class KeptPlan {
 public:
  KeptPlan(const char* sql, std::initializer_list<Oid> types, Planning planning = Planning::kAuto);
  // Runs the plan; returns SPI_processed. Results are in SPI_tuptable until the next call.
  uint64_t Run(const Datum* values, const char* nulls, bool read_only, long limit = 0);
  // Runs the plan with its rows going straight into `store` (one copy, no SPI_tuptable): for
  // set-returning functions whose query yields the function's own row type.
  uint64_t RunInto(const Datum* values, const char* nulls, bool read_only, Tuplestorestate* store,
                   MemoryContext store_cxt);

 private:
  const char* sql_;
  int nargs_;
  Oid types_[16];
  Planning planning_;
  SPIPlanPtr plan_ = nullptr;
};

// Column `col` (1-based) of result row `row`, or nullopt-like via *isnull.
Datum ResultValue(uint64_t row, int col, bool* isnull);

// RAII for SPI_connect / SPI_finish on the success path (on error, abort cleans up SPI).
class SpiSession {
 public:
  SpiSession();
  ~SpiSession();
  void Finish();

 private:
  bool open_ = false;
};

}  // namespace evstream::pg
