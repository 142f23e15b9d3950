// Channel authorisation from JWT claims, and erase_aggregate (see security.hpp).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include "security.hpp"

#include <cstring>
#include <string>

#include "catalog.hpp"
#include "evstream/claims.hpp"
#include "evstream/error.hpp"
#include "evstream/validate.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "access/genam.h"         // systable_beginscan
#include "access/htup_details.h"  // heap_getattr
#include "access/table.h"         // table_open
#include "access/xact.h"          // RegisterXactCallback
#include "catalog/namespace.h"    // get_namespace_oid
#include "catalog/pg_type.h"      // TEXTOID
#include "commands/trigger.h"     // TriggerData, CALLED_AS_TRIGGER
#include "miscadmin.h"            // GetOuterUserId, GetUserNameFromId
#include "utils/acl.h"            // get_role_oid, has_privs_of_role
#include "utils/builtins.h"       // CStringGetTextDatum, format_type_with_typemod
#include "utils/guc.h"            // GetConfigOption
#include "utils/inval.h"          // CacheRegisterSyscacheCallback, CacheRegisterRelcacheCallback
#include "utils/lsyscache.h"      // get_relname_relid
#include "utils/rls.h"            // check_enable_rls, RLS_ENABLED
#include "utils/syscache.h"       // AUTHMEMROLEMEM, AUTHOID
}

#include "append.hpp"
#include "pg/user.hpp"

namespace evstream::security {
namespace {

using pg::KeptPlan;
using pg::PgCall;
namespace ss = evstream::sqlstate;

// The erase bypass: set only by EraseAggregate around its DELETE, for one aggregate; cleared
// at transaction and subtransaction end whatever happens. No SQL can set it.
bool g_erasing = false;
char g_erase_type[256];
char g_erase_id[256];

// The claims last seen, what they allow and their sub (claims rarely change within a session).
std::string g_claims_text;
bool g_claims_parsed = false;
claims::Allowed g_allowed;
std::string g_sub;  // "" when the claims carry no usable sub

KeptPlan g_erase(
    "WITH gone AS (DELETE FROM evstream.events WHERE aggregate_type = $1 AND aggregate_id = $2"
    "              RETURNING id, position, channel)"
    " INSERT INTO evstream.erasures (aggregate_type, aggregate_id, event_count, event_ids,"
    "   positions, channels, erased_by, claims)"
    " SELECT $1, $2, pg_catalog.count(*)::int,"
    "   coalesce(pg_catalog.array_agg(id ORDER BY position), '{}'),"
    "   coalesce(pg_catalog.array_agg(position ORDER BY position), '{}'),"
    "   coalesce(pg_catalog.array_agg(DISTINCT channel), '{}'),"
    "   $3, NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb"
    " FROM gone RETURNING event_count",
    {TEXTOID, TEXTOID, TEXTOID});
KeptPlan g_drop_aggregate(
    "DELETE FROM evstream.aggregate_states WHERE aggregate_type = $1 AND aggregate_id = $2",
    {TEXTOID, TEXTOID});

void OnXactEnd(XactEvent, void*) { g_erasing = false; }
void OnSubXactEnd(SubXactEvent, SubTransactionId, SubTransactionId, void*) { g_erasing = false; }

// Re-reads request.jwt.claims when the setting changed since the last call.
void RefreshClaims() {
  const char* text = nullptr;
  PgCall([&] { text = GetConfigOption("request.jwt.claims", true, false); });
  std::string_view now = text ? text : "";
  if (g_claims_parsed && now == g_claims_text) return;
  g_allowed = claims::Allowed::FromText(now);
  g_sub.clear();
  if (!now.empty()) {
    nlohmann::json parsed = nlohmann::json::parse(now.begin(), now.end(), nullptr, false);
    if (parsed.is_object()) {
      auto sub = parsed.find("sub");
      if (sub != parsed.end() && sub->is_string()) g_sub = sub->get<std::string>();
    }
  }
  g_claims_text = now;
  g_claims_parsed = true;
}

// What the caller's role may do, recomputed when the caller, role memberships or the channel
// grants change (syscache and relcache callbacks only clear `valid`).
struct Rights {
  bool valid = false;
  Oid caller = InvalidOid;
  bool admin = false;    // member of evstream_admin or evstream_daemon (or superuser): every channel
  bool service = false;  // member of evstream_service: any created_by
  bool bound = false;    // has rows in evstream.channel_grants: claims are not trusted
  claims::Allowed grants;
  std::string name;      // the caller's role name
};
Rights g_rights;
Oid g_grants_rel = InvalidOid;

void OnRolesChanged(Datum, int, uint32) { g_rights.valid = false; }
// Any invalidation of evstream.channel_grants (a grant changed, the table altered or dropped)
// forgets both the rights and the table's OID: a recreated extension has a new table.
void OnRelcache(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_grants_rel) {
    g_rights.valid = false;
    g_grants_rel = InvalidOid;
  }
}

bool HasPrivsOf(Oid caller, const char* role) {
  Oid r = get_role_oid(role, true);
  return OidIsValid(r) && has_privs_of_role(caller, r);
}

// Reads evstream.channel_grants with a plain catalog-style scan: no SQL, no search_path, no
// permission check (the table is readable only by its owner and admins through SQL).
void LoadGrants(Rights* r) {
  nlohmann::json patterns = nlohmann::json::array();
  PgCall([&] {
    if (!OidIsValid(g_grants_rel))
      g_grants_rel = get_relname_relid("channel_grants", get_namespace_oid("evstream", false));
    if (!OidIsValid(g_grants_rel)) return;
    Relation rel = table_open(g_grants_rel, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple tuple;
    while ((tuple = systable_getnext(scan)) != nullptr) {
      bool role_null = false, channel_null = false;
      Datum role = heap_getattr(tuple, 1, desc, &role_null);
      Datum channel = heap_getattr(tuple, 2, desc, &channel_null);
      if (role_null || channel_null) continue;
      if (!has_privs_of_role(r->caller, DatumGetObjectId(role))) continue;
      r->bound = true;
      patterns.push_back(text_to_cstring(DatumGetTextPP(channel)));
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
  });
  nlohmann::json grants = nlohmann::json::object();
  grants["channels"] = patterns;
  r->grants = claims::Allowed(grants);
}

const Rights& CallerRights() {
  Oid caller = Caller();
  if (g_rights.valid && g_rights.caller == caller) return g_rights;
  Rights r;
  r.caller = caller;
  PgCall([&] {
    // evstreamd's role filters every subscriber and request by its verified token itself (the
    // same claims rule), so it reads and writes every channel like an admin.
    r.admin = HasPrivsOf(caller, "evstream_admin") || HasPrivsOf(caller, "evstream_daemon");
    r.service = HasPrivsOf(caller, "evstream_service");
    r.name = GetUserNameFromId(caller, false);
  });
  LoadGrants(&r);
  r.valid = true;
  g_rights = std::move(r);
  return g_rights;
}

}  // namespace

Oid Caller() { return GetOuterUserId(); }

std::string Creator(const char* created_by, const std::string& label) {
  if (created_by != nullptr)
    if (auto problem = validate::CreatedBy(label + "created_by", created_by))
      throw Error(ss::kInvalidParameter, *problem);
  const Rights& rights = CallerRights();
  RefreshClaims();
  std::string identity;
  if (rights.bound) {
    // A role limited by channel grants runs its own SQL: its claims are its own to set, so
    // its identity is its role name.
    identity = "user:" + rights.name;
    if (validate::CreatedBy("created_by", identity))
      throw Error(ss::kInsufficientPrivilege,
                  "the role name " + rights.name + " is not usable as a user id",
                  "A user id may contain only letters, digits and _-.:@+=, at most 200 characters.");
  } else if (!g_sub.empty()) {
    identity = "user:" + g_sub;
    if (validate::CreatedBy("created_by", identity))
      throw Error(ss::kInsufficientPrivilege,
                  "the sub of request.jwt.claims is not a valid user id",
                  "A user id may contain only letters, digits and _-.:@+=, at most 200 characters.");
  }
  if (rights.service) {
    if (created_by != nullptr) return created_by;
    return identity.empty() ? std::string("system") : identity;
  }
  if (identity.empty())
    throw Error(ss::kInsufficientPrivilege,
                label + "the caller has no identity to write as: request.jwt.claims has no sub",
                "Only members of evstream_service write as agent:<name> or system.",
                "Set request.jwt.claims with a sub, or grant the role evstream_service.");
  if (created_by != nullptr && identity != created_by)
    throw Error(ss::kInsufficientPrivilege,
                label + "created_by " + created_by + " is not the caller's identity " + identity,
                "Without evstream_service, created_by is user:<sub> of request.jwt.claims.",
                "Leave created_by out, or grant the writing service evstream_service.");
  return identity;
}

void Init() {
  RegisterXactCallback(OnXactEnd, nullptr);
  RegisterSubXactCallback(OnSubXactEnd, nullptr);
  CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, OnRolesChanged, (Datum)0);
  CacheRegisterSyscacheCallback(AUTHOID, OnRolesChanged, (Datum)0);
  CacheRegisterRelcacheCallback(OnRelcache, (Datum)0);
}

bool ChannelAllowed(const char* channel) {
  const Rights& rights = CallerRights();
  if (rights.admin) return true;
  if (rights.bound) return rights.grants.Channel(channel);
  RefreshClaims();
  return g_allowed.Channel(channel);
}

bool MayUseConsumer(Oid owner) {
  const Rights& rights = CallerRights();
  if (rights.admin) return true;
  bool ok = false;
  PgCall([&] { ok = has_privs_of_role(rights.caller, owner); });
  return ok;
}

void CheckWriteChannels(const std::vector<append::Request>& requests) {
  int rls = RLS_NONE;
  PgCall([&] {
    Oid events = get_relname_relid("events", get_namespace_oid("evstream", false));
    rls = check_enable_rls(events, Caller(), true);
  });
  if (rls != RLS_ENABLED) return;
  for (const append::Request& r : requests)
    if (!ChannelAllowed(r.channel))
      throw Error(ss::kChannelNotAllowed,
                  r.label + "channel " + r.channel + " is not allowed by the caller's claims",
                  "request.jwt.claims allows user:<sub>, project:<p> for each of projects, and "
                  "each entry of channels (a trailing * matches a prefix).",
                  "Post to a channel your claims cover.");
}

int64 EraseAggregate(const char* aggregate_type, const char* aggregate_id) {
  if (!aggregate_type || !aggregate_id)
    throw Error(ss::kNullValue, "aggregate_type and aggregate_id must not be null");
  if (strlen(aggregate_type) >= sizeof g_erase_type || strlen(aggregate_id) >= sizeof g_erase_id)
    throw Error(ss::kInvalidParameter, "aggregate_type or aggregate_id is too long");
  std::string erased_by = CallerRights().name;
  pg::SpiSession spi;
  Datum args[3] = {CStringGetTextDatum(aggregate_type), CStringGetTextDatum(aggregate_id),
                   CStringGetTextDatum(erased_by.c_str())};
  // Appends to it wait for the erasure; under REPEATABLE READ / SERIALIZABLE an erasure whose
  // snapshot misses an append committed since is refused (40001), never partial.
  append::LockAggregate(aggregate_type, aggregate_id, "");
  strlcpy(g_erase_type, aggregate_type, sizeof g_erase_type);
  strlcpy(g_erase_id, aggregate_id, sizeof g_erase_id);
  g_erasing = true;
  try {
    g_erase.Run(args, nullptr, false);
  } catch (...) {
    g_erasing = false;
    throw;
  }
  g_erasing = false;
  bool isnull = false;
  int64 erased = DatumGetInt32(pg::ResultValue(0, 1, &isnull));
  g_drop_aggregate.Run(args, nullptr, false);

  std::shared_ptr<catalog::AggregateType> type = catalog::LookupAggregateType(aggregate_type);
  if (type->HasProjection()) {
    const char* type_name = nullptr;
    PgCall([&] { type_name = format_type_with_typemod(type->key.type, type->key.typmod); });
    std::string quoted = "\"";
    for (char c : type->key.name) quoted += (c == '"' ? std::string("\"\"") : std::string(1, c));
    std::string sql = "DELETE FROM " + type->target_sql + " WHERE " + quoted + "\" = $1::" + type_name;
    const char* q = sql.c_str();
    Oid argtype = TEXTOID;
    // The target is the caller's table: its triggers, operators and types run with the
    // caller's rights, never the owner's (the caller needs DELETE on it).
    pg::RunAs(Caller(), [&] {
      PgCall([&] {
        int rc = SPI_execute_with_args(q, 1, &argtype, &args[1], nullptr, false, 0);
        if (rc < 0) elog(ERROR, "evstream: erasing the projected row failed: %s", SPI_result_code_string(rc));
      });
    });
  }
  spi.Finish();
  return erased;
}

// Written without C++ objects: it may ereport directly.
Datum RefuseChange(FunctionCallInfo fcinfo) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "evstream: _refuse_change must be called as a trigger");
  TriggerData* trig = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (g_erasing && TRIGGER_FIRED_BY_DELETE(trig->tg_event) &&
      TRIGGER_FIRED_FOR_ROW(trig->tg_event)) {
    TupleDesc desc = RelationGetDescr(trig->tg_relation);
    int type_col = SPI_fnumber(desc, "aggregate_type");
    int id_col = SPI_fnumber(desc, "aggregate_id");
    char* type = SPI_getvalue(trig->tg_trigtuple, desc, type_col);
    char* id = SPI_getvalue(trig->tg_trigtuple, desc, id_col);
    if (type && id && strcmp(type, g_erase_type) == 0 && strcmp(id, g_erase_id) == 0)
      return PointerGetDatum(trig->tg_trigtuple);
  }
  const char* op = TRIGGER_FIRED_BY_UPDATE(trig->tg_event)   ? "UPDATE"
                   : TRIGGER_FIRED_BY_DELETE(trig->tg_event) ? "DELETE"
                                                             : "TRUNCATE";
  ereport(ERROR, (errcode(MAKE_SQLSTATE('E', 'V', '0', '1', '0')),
                  errmsg("evstream.events is immutable: %s is not allowed", op),
                  errhint("Append a compensating event with evstream.post_event instead; "
                          "evstream.erase_aggregate is the one way to erase an aggregate.")));
  return (Datum)0;
}

}  // namespace evstream::security
