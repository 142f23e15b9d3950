// Writing one row of an extension-owned table without the SQL executor, the way COPY does:
// the table access method's insert, then every index (unique checks included) through
// ExecInsertIndexTuples. No parse, no plan, no executor start-up per row.
//
// It bypasses what only the executor runs: CHECK and NOT NULL constraints, triggers, type
// coercion, row-level security. So a row is written directly only when the table is exactly as
// the caller knows it — every column it supplies present with the expected type, every other
// column nullable without a default, no INSERT trigger, exactly the CHECK constraints the caller
// enforces itself (by name), no FORCE ROW LEVEL SECURITY, no index that may run code of
// someone's making (expression, partial but the ones it names, exclusion, non-built-in access
// method or operator family) — and the row breaks no NOT NULL constraint; otherwise Insert
// answers false and the caller writes the row through SQL, where whatever an administrator
// added runs.
#pragma once

#include <initializer_list>
#include <string_view>

extern "C" {
#include "postgres.h"
#include "utils/rel.h"  // Relation
}

namespace evstream::pg {

struct Column {
  const char* name;
  Oid type;
};

class RowInserter {
 public:
  static constexpr int kMaxColumns = 32;
  static constexpr int kMaxAttributes = 128;
  static constexpr int kMaxNames = 8;

  // columns: what the caller supplies, in the order it supplies them; checks: the names of the
  // table's CHECK constraints the caller enforces; partial_indexes: the partial indexes it knows.
  RowInserter(std::initializer_list<Column> columns, std::initializer_list<const char*> checks,
              std::initializer_list<const char*> partial_indexes);

  // Inserts one row (values/nulls in the order of the columns) when it may be written directly
  // (see above), setting *row to it as a composite datum of the table's row type, allocated in
  // the current memory context, and making it visible to the rest of the transaction
  // (CommandCounterIncrement). Answers false, having written nothing, when it may not.
  // Allocates nothing outside PostgreSQL's memory contexts. Inside PgCall only.
  bool Insert(Relation rel, const Datum* values, const bool* nulls, Datum* row);

  // Forgets what Insert learnt of the table (its columns and constraints): call it from a
  // relcache invalidation callback for the table (any ALTER TABLE, DROP, reset).
  void Forget() { learnt_ = false; }

 private:
  bool Map(TupleDesc desc, int* slot_of_attr) const;  // attnum - 1 -> column index or -1
  bool KnownChecks(TupleDesc desc) const;
  // Maps the columns and checks the constraints once per relcache version of the table.
  bool Learn(Relation rel);

  bool learnt_ = false;
  Oid learnt_rel_ = InvalidOid;
  bool usable_ = false;
  int natts_ = 0;
  int slot_of_attr_[kMaxAttributes];

  Column columns_[kMaxColumns];
  int ncolumns_ = 0;
  const char* checks_[kMaxNames];
  int nchecks_ = 0;
  const char* partial_indexes_[kMaxNames];
  int npartial_ = 0;
};

}  // namespace evstream::pg
