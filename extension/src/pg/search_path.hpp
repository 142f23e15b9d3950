// The fixed search path of post_event and post_events, set only when needed. Their SQL and
// everything it reaches (projections, triggers) runs with search_path = pg_catalog, pg_temp,
// as under a `SET search_path` clause, but the GUC is saved and set only when the call first
// runs SQL (KeptPlan, projections, the batch's unpacking), never on the common path, which runs
// none: a SET clause would save, assign and restore it on every call.
//
// A real GUC setting (not an override search path, which would also override the SET clauses of
// functions it reaches): nested functions keep their own search_path settings.
//
// FixedSearchPath marks a call (constructed at its start, Done() on success); EnsureFixedSearchPath
// sets the GUC at a new nest level the first time within that call. On an error the
// (sub)transaction abort that follows restores the GUC (as it does for fmgr's SET clauses).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace evstream::pg {

class FixedSearchPath {
 public:
  FixedSearchPath();
  FixedSearchPath(const FixedSearchPath&) = delete;
  FixedSearchPath& operator=(const FixedSearchPath&) = delete;
  ~FixedSearchPath();  // restores the enclosing call's state; never touches the GUC
  // The success path: restores the caller's search_path if it was set. Throws PgException.
  void Done();

 private:
  bool outer_active_;
  int outer_level_;
  bool done_ = false;
};

// Inside a FixedSearchPath call: makes search_path = pg_catalog, pg_temp (once per call).
// Outside one (a function that keeps its SET clause): nothing. Inside PgCall only.
void EnsureFixedSearchPath();

}  // namespace evstream::pg
