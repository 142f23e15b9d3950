// Cancel and statement_timeout inside long C++ work: CheckForInterrupts() is cheap (one flag
// test) and, when an interrupt is pending, lets PostgreSQL raise it through PgCall, so that it
// reaches C++ as a PgException and unwinds every C++ frame before InvokeCpp re-raises it.
#pragma once

#include "pg/guard.hpp"

extern "C" {
#include "miscadmin.h"  // InterruptPending, CHECK_FOR_INTERRUPTS
}

namespace evstream::pg {

inline void CheckForInterrupts() {
  if (unlikely(InterruptPending)) PgCall([] { CHECK_FOR_INTERRUPTS(); });
}

}  // namespace evstream::pg
