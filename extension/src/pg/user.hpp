// Running a piece of C++ as another role (PostgreSQL's SetUserIdAndSecContext), restored on
// every exit path. Used by evstream's SECURITY DEFINER functions to run a caller's target-table
// DML (projections, erasure) with the caller's rights, never the owner's.
#pragma once

#include <utility>

#include "guard.hpp"

extern "C" {
#include "miscadmin.h"  // GetUserIdAndSecContext, SetUserIdAndSecContext
}

namespace evstream::pg {

// Runs fn as `user`. fn's PostgreSQL calls must go through PgCall (errors arrive as C++
// exceptions, so the previous user is restored before anything propagates).
template <typename Fn>
auto RunAs(Oid user, Fn&& fn) -> decltype(fn()) {
  Oid saved_user = InvalidOid;
  int saved_context = 0;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  struct Restore {
    Oid user;
    int context;
    ~Restore() { SetUserIdAndSecContext(user, context); }
  } restore{saved_user, saved_context};
  SetUserIdAndSecContext(user, saved_context | SECURITY_LOCAL_USERID_CHANGE);
  return fn();
}

}  // namespace evstream::pg
