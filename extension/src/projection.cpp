// Projections and the state machine (see projection.hpp).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include "projection.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "evstream/error.hpp"
#include "pg/guard.hpp"
#include "pg/search_path.hpp"

extern "C" {
#include "catalog/pg_type.h"   // INT4OID, TEXTOID, TIMESTAMPTZOID, JSONBOID, NUMERICOID
#include "executor/spi.h"      // SPI_prepare, SPI_execute_plan
#include "utils/builtins.h"    // cstring_to_text_with_len, numeric_out
#include "utils/datum.h"       // datumCopy
#include "utils/memutils.h"    // AllocSetContextCreate
#include "utils/numeric.h"     // NumericGetDatum
}

namespace evstream::projection {
namespace {

using pg::EnsureFixedSearchPath;
using pg::PgCall;

std::string Quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The columns of an upsert for one set of data columns: key, the data columns, then the
// maintained columns.
std::vector<const catalog::Column*> Columns(const catalog::AggregateType& a, uint64_t mask) {
  std::vector<const catalog::Column*> cols{&a.key};
  for (size_t i = 0; i < a.data_columns.size(); i++)
    if (mask & (uint64_t{1} << i)) cols.push_back(&a.data_columns[i]);
  for (const auto* c : {&a.version, &a.updated_at, &a.status})
    if (*c) cols.push_back(&**c);
  return cols;
}

// The upsert of one row (or the plain insert of `rows` rows) for one set of data columns,
// parameters $1..$n typed like the columns.
std::string UpsertSql(const catalog::AggregateType& a, uint64_t mask, size_t rows,
                      std::vector<Oid>* types) {
  std::vector<const catalog::Column*> cols = Columns(a, mask);
  std::string names, params, sets;
  for (size_t i = 0; i < cols.size(); i++) {
    names += (i ? ", " : "") + Quote(cols[i]->name);
    if (i > 0) sets += (i > 1 ? ", " : "") + Quote(cols[i]->name) + " = EXCLUDED." + Quote(cols[i]->name);
  }
  size_t n = 0;
  for (size_t r = 0; r < rows; r++) {
    params += r ? "), (" : "";
    for (size_t i = 0; i < cols.size(); i++) {
      params += (i ? ", $" : "$") + std::to_string(++n);
      types->push_back(cols[i]->type);
    }
  }
  std::string insert = "INSERT INTO " + a.target_sql + " AS t (" + names + ") VALUES (" + params + ")";
  // Multi-row statements only serve rebuild, which writes each key once into a truncated table.
  if (rows > 1) return insert;
  return insert + " ON CONFLICT (" + Quote(a.key.name) + ") DO " +
         (sets.empty() ? std::string("NOTHING") : "UPDATE SET " + sets);
}

// Runs a kept plan from `cache` (prepared on first use).
void RunUpsert(const catalog::AggregateType& a, std::unordered_map<uint64_t, SPIPlanPtr>& cache,
               uint64_t mask, size_t rows, Datum* values, const char* nulls) {
  SPIPlanPtr& plan = cache[mask];
  if (plan == nullptr) {
    std::vector<Oid> types;
    std::string sql = UpsertSql(a, mask, rows, &types);
    const char* s = sql.c_str();
    SPIPlanPtr prepared = nullptr;
    PgCall([&] {
      EnsureFixedSearchPath();
      prepared = SPI_prepare(s, static_cast<int>(types.size()), types.data());
      if (prepared == nullptr)
        elog(ERROR, "evstream: cannot prepare projection upsert: %s", SPI_result_code_string(SPI_result));
      SPI_keepplan(prepared);
    });
    plan = prepared;
  }
  SPIPlanPtr p = plan;
  PgCall([&] {
    EnsureFixedSearchPath();
    int rc = SPI_execute_plan(p, values, nulls, false, 0);
    if (rc < 0) elog(ERROR, "evstream: projection upsert failed: %s", SPI_result_code_string(rc));
  });
}

}  // namespace

std::string Transition(const catalog::AggregateType& a, const char* aggregate_id,
                       const std::optional<std::string>& current, const char* event_type,
                       const std::string& label) {
  if (auto next = a.Next(current, event_type)) return *next;
  std::string accepted;
  std::string prefix = (current ? *current : std::string("\x01")) + '\x1f';
  for (const auto& [key, to] : a.transitions)
    if (key.compare(0, prefix.size(), prefix) == 0)
      accepted += (accepted.empty() ? "" : ", ") + key.substr(prefix.size());
  std::string where = a.aggregate_type + " " + aggregate_id;
  std::string msg = current ? "illegal transition: " + where + " is in state \"" + *current +
                                  "\", which does not accept " + event_type
                            : "illegal transition: " + where + " has no state yet, and " +
                                  event_type + " cannot start it";
  if (!label.empty()) msg = label.substr(0, label.size() - 1) + ": " + msg;
  throw Error(sqlstate::kIllegalTransition, msg,
              accepted.empty() ? "No event is accepted from this state."
                               : "Accepted from this state: " + accepted + ".",
              "Declare the transition with evstream.allow_transition, or post an accepted event.");
}

Row::Row(const catalog::AggregateType& a) : a_(a) {
  PgCall([&] {
    cxt_ = AllocSetContextCreate(CurrentMemoryContext, "evstream projection row", ALLOCSET_DEFAULT_SIZES);
  });
}

Row::~Row() {
  if (cxt_) MemoryContextDelete(cxt_);
}

void Row::Reset() {
  mask_ = 0;
  MemoryContextReset(cxt_);
}

void Row::Apply(Jsonb* data) {
  const catalog::AggregateType& a = a_;
  Datum* values = values_;
  bool* nulls = nulls_;
  uint64_t mask = mask_;
  MemoryContext cxt = cxt_;
  int failed = -1;
  const char* text = nullptr;
  try {
    PgCall([&] {
      MemoryContext old = MemoryContextSwitchTo(cxt);
      for (size_t i = 0; i < a.data_columns.size(); i++) {
        const catalog::Column& c = a.data_columns[i];
        JsonbValue v;
        JsonbValue* f = getKeyJsonValueFromContainer(&data->root, c.name.data(), c.name.size(), &v);
        if (f == nullptr) continue;
        failed = static_cast<int>(i);
        text = nullptr;
        Datum d = (Datum)0;
        bool isnull = false;
        if (f->type == jbvNull) {
          isnull = true;
          d = InputFunctionCall(const_cast<FmgrInfo*>(&c.input), nullptr, c.typioparam, c.typmod);
        } else if (c.type == JSONBOID) {
          d = JsonbPGetDatum(JsonbValueToJsonb(f));
        } else if (f->type == jbvString && c.type == TEXTOID) {
          d = PointerGetDatum(cstring_to_text_with_len(f->val.string.val, f->val.string.len));
        } else if (f->type == jbvNumeric && c.type == NUMERICOID) {
          d = datumCopy(NumericGetDatum(f->val.numeric), false, -1);
        } else {
          if (f->type == jbvString) text = pnstrdup(f->val.string.val, f->val.string.len);
          else if (f->type == jbvNumeric)
            text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(f->val.numeric)));
          else if (f->type == jbvBool) text = f->val.boolean ? "true" : "false";
          else text = JsonbToCString(nullptr, f->val.binary.data, f->val.binary.len);
          d = InputFunctionCall(const_cast<FmgrInfo*>(&c.input), const_cast<char*>(text),
                                c.typioparam, c.typmod);
        }
        values[i] = d;
        nulls[i] = isnull;
        mask |= uint64_t{1} << i;
      }
      failed = -1;
      MemoryContextSwitchTo(old);
    });
  } catch (pg::PgException& e) {
    if (failed < 0) throw;
    const catalog::Column& c = a.data_columns[failed];
    ErrorData* err = e.data();
    std::string msg = "cannot project data." + c.name + " into " + a.target_sql + "." +
                      Quote(c.name) + ": " + (err->message ? err->message : "conversion failed");
    const char* m = msg.c_str();
    PgCall([&] { err->message = pstrdup(m); });
    throw;
  }
  mask_ = mask;
}

Datum Row::Convert(const catalog::Column& c, const char* text, const char* what) {
  Datum d = (Datum)0;
  try {
    PgCall([&] {
      MemoryContext old = MemoryContextSwitchTo(cxt_);
      d = InputFunctionCall(const_cast<FmgrInfo*>(&c.input), const_cast<char*>(text),
                            c.typioparam, c.typmod);
      MemoryContextSwitchTo(old);
    });
  } catch (pg::PgException& e) {
    ErrorData* err = e.data();
    std::string msg = std::string("cannot project ") + what + " into " + a_.target_sql + "." +
                      Quote(c.name) + ": " + (err->message ? err->message : "conversion failed");
    const char* m = msg.c_str();
    PgCall([&] { err->message = pstrdup(m); });
    throw;
  }
  return d;
}

void Row::Values(const char* aggregate_id, int32 version, TimestampTz at,
                 const std::optional<std::string>& state, std::vector<Datum>* values_out,
                 std::vector<char>* nulls_out) {
  const catalog::AggregateType& a = a_;
  std::vector<Datum>& values = *values_out;
  std::vector<char>& nulls = *nulls_out;
  values.clear();
  nulls.clear();
  values.push_back(a.key.type == TEXTOID ? CStringGetTextDatum(aggregate_id)
                                         : Convert(a.key, aggregate_id, "aggregate_id"));
  nulls.push_back(' ');
  for (size_t i = 0; i < a.data_columns.size(); i++) {
    if (!(mask_ & (uint64_t{1} << i))) continue;
    values.push_back(values_[i]);
    nulls.push_back(nulls_[i] ? 'n' : ' ');
  }
  if (a.version) {
    values.push_back(a.version->type == INT4OID
                         ? Int32GetDatum(version)
                         : Convert(*a.version, std::to_string(version).c_str(), "version"));
    nulls.push_back(' ');
  }
  if (a.updated_at) {
    if (a.updated_at->type == TIMESTAMPTZOID) {
      values.push_back(TimestampTzGetDatum(at));
    } else {
      const char* text = nullptr;
      PgCall([&] { text = timestamptz_to_str(at); });
      values.push_back(Convert(*a.updated_at, text, "updated_at"));
    }
    nulls.push_back(' ');
  }
  if (a.status) {
    values.push_back(state ? Convert(*a.status, state->c_str(), "the state") : (Datum)0);
    nulls.push_back(state ? ' ' : 'n');
  }
}

void Row::Write(const char* aggregate_id, int32 version, TimestampTz at,
                const std::optional<std::string>& state) {
  std::vector<Datum> values;
  std::vector<char> nulls;
  Values(aggregate_id, version, at, state, &values, &nulls);
  RunUpsert(a_, a_.upserts, mask_, 1, values.data(), nulls.data());
}

Batch::Batch(const catalog::AggregateType& a) : a_(a) {}

Batch::~Batch() {
  for (auto& [mask, p] : pending_)
    if (p.cxt) MemoryContextDelete(p.cxt);
}

void Batch::Add(Row& row, const char* aggregate_id, int32 version, TimestampTz at,
                const std::optional<std::string>& state) {
  std::vector<Datum> values;
  std::vector<char> nulls;
  row.Values(aggregate_id, version, at, state, &values, &nulls);
  uint64_t mask = row.mask();
  Pending& p = pending_[mask];
  if (p.cxt == nullptr)
    PgCall([&] {
      p.cxt = AllocSetContextCreate(CurrentMemoryContext, "evstream rebuild batch", ALLOCSET_DEFAULT_SIZES);
    });
  std::vector<const catalog::Column*> cols = Columns(a_, mask);
  size_t base = p.values.size();
  p.values.resize(base + values.size());
  Datum* out = p.values.data() + base;
  MemoryContext cxt = p.cxt;
  PgCall([&] {
    MemoryContext old = MemoryContextSwitchTo(cxt);
    for (size_t i = 0; i < values.size(); i++)
      out[i] = nulls[i] == 'n' ? (Datum)0 : datumCopy(values[i], cols[i]->typbyval, cols[i]->typlen);
    MemoryContextSwitchTo(old);
  });
  p.nulls.insert(p.nulls.end(), nulls.begin(), nulls.end());
  if (++p.rows == kBatchRows) Write(mask, &p, false);
}

// Writes a full batch with the multi-row plan, or (all) every pending row one by one.
void Batch::Write(uint64_t mask, Pending* p, bool all) {
  if (p->rows == 0) return;
  if (!all) {
    RunUpsert(a_, a_.batch_upserts, mask, kBatchRows, p->values.data(), p->nulls.data());
  } else {
    size_t width = p->values.size() / p->rows;
    for (size_t r = 0; r < p->rows; r++)
      RunUpsert(a_, a_.upserts, mask, 1, p->values.data() + r * width, p->nulls.data() + r * width);
  }
  p->rows = 0;
  p->values.clear();
  p->nulls.clear();
  MemoryContext cxt = p->cxt;
  PgCall([&] { MemoryContextReset(cxt); });
}

void Batch::Flush() {
  for (auto& [mask, p] : pending_) Write(mask, &p, true);
}

}  // namespace evstream::projection
