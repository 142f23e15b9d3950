// The fixed search path of post_event and post_events (see search_path.hpp).
#include "search_path.hpp"

#include "guard.hpp"

extern "C" {
#include "miscadmin.h"     // superuser
#include "utils/guc.h"     // NewGUCNestLevel, set_config_option, AtEOXact_GUC
}

namespace evstream::pg {
namespace {

bool g_active = false;  // inside a FixedSearchPath call
int g_level = 0;        // its GUC nest level once set, else 0

}  // namespace

FixedSearchPath::FixedSearchPath() : outer_active_(g_active), outer_level_(g_level) {
  g_active = true;
  g_level = 0;
}

FixedSearchPath::~FixedSearchPath() {
  g_active = outer_active_;
  g_level = outer_level_;
}

void FixedSearchPath::Done() {
  if (done_) return;
  done_ = true;
  int level = g_level;
  g_active = outer_active_;
  g_level = outer_level_;
  if (level > 0) PgCall([level] { AtEOXact_GUC(true, level); });
}

void EnsureFixedSearchPath() {
  if (!g_active || g_level > 0) return;
  int level = NewGUCNestLevel();
  // As fmgr applies a function's SET clause (fmgr_security_definer).
  (void)set_config_option("search_path", "pg_catalog, pg_temp", superuser() ? PGC_SUSET : PGC_USERSET,
                          PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  g_level = level;
}

}  // namespace evstream::pg
