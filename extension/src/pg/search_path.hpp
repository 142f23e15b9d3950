// A fixed search path for everything an entry point runs: pg_catalog only (no temporary schema,
// no schema of the caller's). For SECURITY DEFINER functions on the hot path, in place of a
// `SET search_path` clause: the clause makes every call save, parse, assign and restore the GUC
// and recompute the path twice; an override search path is a list pushed and popped.
//
// Pushed when constructed (inside the C++ side of InvokeCpp); popped by Pop() on the success
// path. On an error the (sub)transaction abort that follows removes it (AtEOXact_Namespace /
// AtEOSubXact_Namespace), so nothing of ours runs with the caller's path, and nothing after us
// runs with ours.
#pragma once

#include "guard.hpp"

extern "C" {
#include "catalog/namespace.h"  // PushOverrideSearchPath
#include "nodes/pg_list.h"
}

namespace evstream::pg {

class FixedSearchPath {
 public:
  FixedSearchPath() {
    PgCall([] {
      OverrideSearchPath path;
      path.schemas = NIL;
      path.addCatalog = true;
      path.addTemp = false;
      path.generation = 0;
      PushOverrideSearchPath(&path);
    });
    pushed_ = true;
  }
  FixedSearchPath(const FixedSearchPath&) = delete;
  FixedSearchPath& operator=(const FixedSearchPath&) = delete;
  ~FixedSearchPath() = default;  // on an exception the abort pops it (see above)

  void Pop() {
    if (!pushed_) return;
    pushed_ = false;
    PgCall([] { PopOverrideSearchPath(); });
  }

 private:
  bool pushed_ = false;
};

}  // namespace evstream::pg
