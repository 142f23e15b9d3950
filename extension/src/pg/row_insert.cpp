// Direct row writes (see row_insert.hpp).
#include "row_insert.hpp"

#include <cstring>
#include <stdexcept>

extern "C" {
#include "access/htup_details.h"  // heap_form_tuple, heap_copy_tuple_as_datum
#include "access/tableam.h"       // table_tuple_insert
#include "access/transam.h"       // FirstNormalObjectId
#include "access/xact.h"          // GetCurrentCommandId, CommandCounterIncrement
#include "executor/executor.h"    // CreateExecutorState, ExecInsertIndexTuples
#include "nodes/execnodes.h"      // ResultRelInfo
#include "utils/rel.h"
}

namespace evstream::pg {

RowInserter::RowInserter(std::initializer_list<Column> columns, std::initializer_list<const char*> checks,
                         std::initializer_list<const char*> partial_indexes) {
  if (columns.size() > kMaxColumns || checks.size() > kMaxNames || partial_indexes.size() > kMaxNames)
    throw std::logic_error("RowInserter: too many columns or names");
  for (const Column& c : columns) columns_[ncolumns_++] = c;
  for (const char* n : checks) checks_[nchecks_++] = n;
  for (const char* n : partial_indexes) partial_indexes_[npartial_++] = n;
}

bool RowInserter::Map(TupleDesc desc, int* slot_of_attr) const {
  if (desc->natts > kMaxAttributes) return false;
  bool found[kMaxColumns] = {};
  for (int a = 0; a < desc->natts; a++) {
    Form_pg_attribute att = TupleDescAttr(desc, a);
    slot_of_attr[a] = -1;
    if (att->attisdropped) continue;
    for (int c = 0; c < ncolumns_; c++) {
      if (strcmp(columns_[c].name, NameStr(att->attname)) != 0) continue;
      if (att->atttypid != columns_[c].type) return false;  // retyped: SQL coerces, we would not
      slot_of_attr[a] = c;
      found[c] = true;
    }
    // A column we do not supply must be one an INSERT would leave null.
    if (slot_of_attr[a] < 0 && (att->attnotnull || att->atthasdef || att->attgenerated)) return false;
  }
  for (int c = 0; c < ncolumns_; c++)
    if (!found[c]) return false;
  return true;
}

bool RowInserter::KnownChecks(TupleDesc desc) const {
  int n = desc->constr != nullptr ? desc->constr->num_check : 0;
  if (n != nchecks_) return false;
  for (int i = 0; i < n; i++) {
    bool known = false;
    for (int k = 0; k < nchecks_ && !known; k++) known = strcmp(desc->constr->check[i].ccname, checks_[k]) == 0;
    if (!known) return false;
  }
  return true;
}

bool RowInserter::Learn(Relation rel) {
  TupleDesc desc = RelationGetDescr(rel);
  if (learnt_ && learnt_rel_ == RelationGetRelid(rel) && natts_ == desc->natts) return usable_;
  // FORCE ROW LEVEL SECURITY would subject even the owner's INSERT to policies: SQL applies them.
  usable_ = rel->rd_rel->relkind == RELKIND_RELATION && !rel->rd_rel->relforcerowsecurity &&
            KnownChecks(desc) && Map(desc, slot_of_attr_);
  natts_ = desc->natts;
  learnt_rel_ = RelationGetRelid(rel);
  learnt_ = true;
  return usable_;
}

bool RowInserter::Insert(Relation rel, const Datum* values, const bool* nulls, Datum* row) {
  // Triggers are looked at on every call (a trigger's creation invalidates the relcache entry
  // too, but reading trigdesc costs nothing).
  TriggerDesc* triggers = rel->trigdesc;
  if (triggers != nullptr &&
      (triggers->trig_insert_before_row || triggers->trig_insert_after_row ||
       triggers->trig_insert_instead_row || triggers->trig_insert_before_statement ||
       triggers->trig_insert_after_statement || triggers->trig_insert_new_table))
    return false;
  if (!Learn(rel)) return false;
  TupleDesc desc = RelationGetDescr(rel);
  const int* slot_of_attr = slot_of_attr_;
  int natts = desc->natts;
  Datum* row_values = static_cast<Datum*>(palloc0(sizeof(Datum) * natts));
  bool* row_nulls = static_cast<bool*>(palloc(sizeof(bool) * natts));
  for (int a = 0; a < natts; a++) {
    int c = slot_of_attr[a];
    row_nulls[a] = c < 0 || nulls[c];
    if (c >= 0) row_values[a] = values[c];
    if (row_nulls[a] && TupleDescAttr(desc, a)->attnotnull) return false;  // SQL raises 23502
  }

  EState* estate = CreateExecutorState();
  ResultRelInfo* rri = makeNode(ResultRelInfo);
  InitResultRelInfo(rri, rel, 1, nullptr, 0);
  ExecOpenIndices(rri, false);
  // Indexes that may run code of someone's making while an entry is inserted — expressions,
  // partial indexes other than the known ones, exclusion constraints, an access method or
  // operator family that is not built in — go through SQL, which runs it with the function's
  // fixed search path.
  for (int i = 0; i < rri->ri_NumIndices; i++) {
    IndexInfo* info = rri->ri_IndexRelationInfo[i];
    Relation index = rri->ri_IndexRelationDescs[i];
    bool known_partial = info->ii_Predicate == NIL;
    for (int k = 0; k < npartial_ && !known_partial; k++)
      known_partial = strcmp(RelationGetRelationName(index), partial_indexes_[k]) == 0;
    bool builtin = index->rd_rel->relam < FirstNormalObjectId;
    for (int k = 0; k < IndexRelationGetNumberOfKeyAttributes(index) && builtin; k++)
      builtin = index->rd_opfamily[k] < FirstNormalObjectId;
    if (info->ii_Expressions != NIL || !known_partial || info->ii_ExclusionOps != nullptr || !builtin) {
      ExecCloseIndices(rri);
      FreeExecutorState(estate);
      return false;
    }
  }
  HeapTuple tuple = heap_form_tuple(desc, row_values, row_nulls);
  TupleTableSlot* slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
  ExecStoreHeapTuple(tuple, slot, false);
  table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, nullptr);
  if (rri->ri_NumIndices > 0)
    list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL));
  // The stored row, with its location (t_self) set by the insert.
  bool should_free = false;
  HeapTuple stored = ExecFetchSlotHeapTuple(slot, false, &should_free);
  *row = heap_copy_tuple_as_datum(stored, desc);
  ExecDropSingleTupleTableSlot(slot);
  ExecCloseIndices(rri);
  FreeExecutorState(estate);
  CommandCounterIncrement();
  return true;
}

}  // namespace evstream::pg
