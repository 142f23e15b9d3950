// Writing one row of an extension-owned table without the SQL executor, the way COPY does:
// the table access method's insert, then every index (unique checks included) through
// ExecInsertIndexTuples. No parse, no plan, no executor start-up per row.
//
// It bypasses what only the executor runs: CHECK constraints, NOT NULL checks, triggers and
// row-level security. Callers use it only for a table whose rows they have checked themselves
// and whose triggers and constraints are the ones they know (see RowInserter::Usable), and
// fall back to SQL otherwise.
#pragma once

#include <string_view>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/rel.h"  // Relation
}

namespace evstream::pg {

class RowInserter {
 public:
  // columns: the names of the values the caller supplies, in the order it supplies them.
  explicit RowInserter(std::vector<std::string_view> columns) : columns_(std::move(columns)) {}

  // Whether rows may be written directly: the table has no INSERT trigger, exactly
  // `known_checks` CHECK constraints, and every column not supplied is nullable without a
  // default (so leaving it null is what an INSERT would store). Inside PgCall only.
  bool Usable(Relation rel, int known_checks);

  // Inserts one row (values/nulls in the order of `columns`) and returns it as a composite
  // datum of the table's row type, allocated in the current memory context. Makes the row
  // visible to the rest of the transaction (CommandCounterIncrement). Inside PgCall only.
  Datum Insert(Relation rel, const Datum* values, const bool* nulls);

 private:
  // attnum - 1 -> index into the caller's columns, or -1; rebuilt when the descriptor changes.
  void Map(TupleDesc desc);

  std::vector<std::string_view> columns_;
  std::vector<int> slot_of_attr_;
  Oid mapped_rel_ = InvalidOid;
  TupleDesc mapped_desc_ = nullptr;
  bool mapped_ok_ = false;
};

}  // namespace evstream::pg
