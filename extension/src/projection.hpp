// Projections and the state machine, applied per event: the FSM step decides an aggregate's
// next state, and Row accumulates the target columns of one aggregate from its events' data and
// writes them with one upsert (a kept plan per set of columns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"      // Jsonb
#include "utils/timestamp.h"  // TimestampTz
}

namespace evstream::projection {

// The state after `event_type` from `current` (nullopt = the aggregate has no state yet).
// Throws evstream::Error (EV004) naming the aggregate, its state and the event type when the
// type has a state machine and no declared transition matches.
// `label` prefixes the message in batches ("events[2].").
std::string Transition(const catalog::AggregateType& a, const char* aggregate_id,
                       const std::optional<std::string>& current, const char* event_type,
                       const std::string& label = "");

// One target row being built. Values live in the row's own memory context, which Reset()
// empties (rebuild reuses one Row for every aggregate).
class Row {
 public:
  explicit Row(const catalog::AggregateType& a);
  ~Row();
  Row(const Row&) = delete;
  Row& operator=(const Row&) = delete;

  // Sets every data column whose name is a top-level key of `data` (later events win).
  // A value that does not convert to the column's type raises the PostgreSQL error with a
  // message naming the key and the column.
  void Apply(Jsonb* data);
  // Upserts the row keyed by aggregate_id, maintaining version / updated_at / status columns.
  void Write(const char* aggregate_id, int32 version, TimestampTz at,
             const std::optional<std::string>& state);
  void Reset();
  uint64_t mask() const { return mask_; }
  // The upsert's parameters (key, data columns of mask(), maintained columns), as Write uses.
  void Values(const char* aggregate_id, int32 version, TimestampTz at,
              const std::optional<std::string>& state, std::vector<Datum>* values,
              std::vector<char>* nulls);

 private:
  Datum Convert(const catalog::Column& c, const char* text, const char* what);

  const catalog::AggregateType& a_;
  MemoryContext cxt_ = nullptr;
  uint64_t mask_ = 0;
  Datum values_[64];
  bool nulls_[64];
};

// Rebuild's writer: rows are copied out of Row and written kBatchRows at a time with one
// multi-row upsert per set of columns (a kept plan each); Flush writes what is left one by one.
inline constexpr size_t kBatchRows = 200;

class Batch {
 public:
  explicit Batch(const catalog::AggregateType& a);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void Add(Row& row, const char* aggregate_id, int32 version, TimestampTz at,
           const std::optional<std::string>& state);
  void Flush();

 private:
  struct Pending {
    MemoryContext cxt = nullptr;  // the copied values
    size_t rows = 0;
    std::vector<Datum> values;
    std::vector<char> nulls;
  };
  void Write(uint64_t mask, Pending* p, bool all);

  const catalog::AggregateType& a_;
  std::unordered_map<uint64_t, Pending> pending_;
};

}  // namespace evstream::projection
