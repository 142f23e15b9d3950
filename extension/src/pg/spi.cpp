// Kept SPI plans and the SPI session guard (see spi.hpp).
#include "spi.hpp"

#include "search_path.hpp"

extern "C" {
#include "executor/tstoreReceiver.h"  // SetTuplestoreDestReceiverParams
#include "nodes/params.h"            // makeParamList
#include "tcop/dest.h"               // CreateDestReceiver
}

#include <cstring>
#include <stdexcept>

namespace evstream::pg {

KeptPlan::KeptPlan(const char* sql, std::initializer_list<Oid> types, Planning planning)
    : sql_(sql), nargs_(0), planning_(planning) {
  if (types.size() > 16) throw std::logic_error("KeptPlan: too many arguments");
  for (Oid t : types) types_[nargs_++] = t;
}

// Prepares and keeps the plan on first use. Inside PgCall only.
static SPIPlanPtr EnsurePrepared(SPIPlanPtr* plan_slot, const char* sql, int nargs, Oid* types,
                                 Planning planning) {
  if (*plan_slot == nullptr) {
    int options = planning == Planning::kGeneric ? CURSOR_OPT_GENERIC_PLAN : 0;
    SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, types, options);
    if (plan == nullptr) elog(ERROR, "evstream: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0) elog(ERROR, "evstream: SPI_keepplan failed");
    *plan_slot = plan;
  }
  return *plan_slot;
}

uint64_t KeptPlan::RunInto(const Datum* values, const char* nulls, bool read_only,
                           Tuplestorestate* store, MemoryContext store_cxt) {
  uint64_t processed = 0;
  PgCall([&] {
    EnsureFixedSearchPath();
    EnsurePrepared(&plan_, sql_, nargs_, types_, planning_);
    ParamListInfo params = makeParamList(nargs_);
    for (int i = 0; i < nargs_; i++) {
      params->params[i].value = values[i];
      params->params[i].isnull = nulls != nullptr && nulls[i] == 'n';
      params->params[i].pflags = PARAM_FLAG_CONST;
      params->params[i].ptype = types_[i];
    }
    DestReceiver* dest = CreateDestReceiver(DestTuplestore);
    SetTuplestoreDestReceiverParams(dest, store, store_cxt, false, nullptr, nullptr);
    SPIExecuteOptions options;
    memset(&options, 0, sizeof options);
    options.params = params;
    options.read_only = read_only;
    options.dest = dest;
    int rc = SPI_execute_plan_extended(plan_, &options);
    if (rc < 0) elog(ERROR, "evstream: SPI_execute_plan_extended failed: %s", SPI_result_code_string(rc));
    processed = SPI_processed;
    dest->rDestroy(dest);
  });
  return processed;
}

uint64_t KeptPlan::Run(const Datum* values, const char* nulls, bool read_only, long limit) {
  uint64_t processed = 0;
  PgCall([&] {
    EnsureFixedSearchPath();
    EnsurePrepared(&plan_, sql_, nargs_, types_, planning_);
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
