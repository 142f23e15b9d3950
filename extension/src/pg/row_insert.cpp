// Direct row writes (see row_insert.hpp).
#include "row_insert.hpp"

extern "C" {
#include "access/htup_details.h"  // heap_form_tuple, heap_copy_tuple_as_datum
#include "access/tableam.h"       // table_tuple_insert
#include "access/xact.h"          // GetCurrentCommandId, CommandCounterIncrement
#include "executor/executor.h"    // CreateExecutorState, ExecInsertIndexTuples
#include "nodes/execnodes.h"      // ResultRelInfo
#include "utils/rel.h"
}

namespace evstream::pg {

void RowInserter::Map(TupleDesc desc) {
  slot_of_attr_.assign(desc->natts, -1);
  mapped_ok_ = true;
  std::vector<bool> found(columns_.size(), false);
  for (int a = 0; a < desc->natts; a++) {
    Form_pg_attribute att = TupleDescAttr(desc, a);
    if (att->attisdropped) continue;
    std::string_view name(NameStr(att->attname));
    for (size_t c = 0; c < columns_.size(); c++) {
      if (columns_[c] == name) {
        slot_of_attr_[a] = static_cast<int>(c);
        found[c] = true;
      }
    }
    // A column we do not supply must be one an INSERT would leave null.
    if (slot_of_attr_[a] < 0 && (att->attnotnull || att->atthasdef || att->attgenerated))
      mapped_ok_ = false;
  }
  for (bool f : found) mapped_ok_ = mapped_ok_ && f;
}

bool RowInserter::Usable(Relation rel, int known_checks) {
  TupleDesc desc = RelationGetDescr(rel);
  if (RelationGetRelid(rel) != mapped_rel_ || desc != mapped_desc_) {
    Map(desc);
    mapped_rel_ = RelationGetRelid(rel);
    mapped_desc_ = desc;
  }
  if (!mapped_ok_) return false;
  if (rel->rd_rel->relkind != RELKIND_RELATION) return false;
  TriggerDesc* triggers = rel->trigdesc;
  if (triggers != nullptr &&
      (triggers->trig_insert_before_row || triggers->trig_insert_after_row ||
       triggers->trig_insert_instead_row || triggers->trig_insert_before_statement ||
       triggers->trig_insert_after_statement || triggers->trig_insert_new_table))
    return false;
  int checks = desc->constr != nullptr ? desc->constr->num_check : 0;
  return checks == known_checks;
}

Datum RowInserter::Insert(Relation rel, const Datum* values, const bool* nulls) {
  TupleDesc desc = RelationGetDescr(rel);
  int natts = desc->natts;
  Datum* row_values = static_cast<Datum*>(palloc0(sizeof(Datum) * natts));
  bool* row_nulls = static_cast<bool*>(palloc(sizeof(bool) * natts));
  for (int a = 0; a < natts; a++) {
    int c = slot_of_attr_[a];
    row_nulls[a] = c < 0 || nulls[c];
    if (c >= 0) row_values[a] = values[c];
  }
  HeapTuple tuple = heap_form_tuple(desc, row_values, row_nulls);

  EState* estate = CreateExecutorState();
  ResultRelInfo* rri = makeNode(ResultRelInfo);
  InitResultRelInfo(rri, rel, 1, nullptr, 0);
  ExecOpenIndices(rri, false);
  TupleTableSlot* slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
  ExecStoreHeapTuple(tuple, slot, false);
  table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, nullptr);
  if (rri->ri_NumIndices > 0)
    list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL));
  // The stored row, with its location (t_self) set by the insert.
  bool should_free = false;
  HeapTuple stored = ExecFetchSlotHeapTuple(slot, false, &should_free);
  Datum result = heap_copy_tuple_as_datum(stored, desc);
  ExecDropSingleTupleTableSlot(slot);
  ExecCloseIndices(rri);
  FreeExecutorState(estate);
  CommandCounterIncrement();
  return result;
}

}  // namespace evstream::pg
