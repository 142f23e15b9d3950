// Kept SPI plans and the SPI session guard (see spi.hpp).
#include "spi.hpp"

#include <stdexcept>

namespace evstream::pg {

KeptPlan::KeptPlan(const char* sql, std::initializer_list<Oid> types) : sql_(sql), nargs_(0) {
  if (types.size() > 16) throw std::logic_error("KeptPlan: too many arguments");
  for (Oid t : types) types_[nargs_++] = t;
}

uint64_t KeptPlan::Run(const Datum* values, const char* nulls, bool read_only, long limit) {
  uint64_t processed = 0;
  PgCall([&] {
    if (plan_ == nullptr) {
      SPIPlanPtr plan = SPI_prepare(sql_, nargs_, types_);
      if (plan == nullptr) elog(ERROR, "evstream: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
      if (SPI_keepplan(plan) != 0) elog(ERROR, "evstream: SPI_keepplan failed");
      plan_ = plan;
    }
    int rc = SPI_execute_plan(plan_, const_cast<Datum*>(values), nulls, read_only, limit);
    if (rc < 0) elog(ERROR, "evstream: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
    processed = SPI_processed;
  });
  return processed;
}

Datum ResultValue(uint64_t row, int col, bool* isnull) {
  return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

SpiSession::SpiSession() {
  PgCall([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "evstream: SPI_connect failed");
  });
  open_ = true;
}

// On the error path SPI stays connected on purpose: the error being raised aborts the
// transaction, which closes SPI (AtEOXact_SPI), and the copied ErrorData lives in SPI memory.
SpiSession::~SpiSession() = default;

void SpiSession::Finish() {
  if (open_) {
    open_ = false;
    PgCall([] { SPI_finish(); });
  }
}

}  // namespace evstream::pg
