// The C++ / PostgreSQL boundary. PostgreSQL reports errors with longjmp, C++ with exceptions;
// neither may cross the other.
//
//  - InvokeCpp(fn): used by every SQL-callable entry point. Runs fn; any exception is caught,
//    its fields copied into fixed buffers, and only after the catch scope has closed is the
//    error re-raised with ereport(ERROR) (or ReThrowError for a PostgreSQL error).
//  - PgCall(fn): used by C++ code calling a PostgreSQL function that may ereport. Runs fn under
//    PG_TRY; an error is copied (CopyErrorData), the error state flushed, and a PgException
//    thrown outside the PG_TRY block. fn itself must hold no object with a destructor.
#pragma once

#include <cstring>
#include <exception>
#include <utility>

#include "evstream/error.hpp"

extern "C" {
#include "postgres.h"
#include "utils/elog.h"  // ereport, CopyErrorData, ReThrowError
}

namespace evstream::pg {

// A PostgreSQL error caught by PgCall, carried through C++ frames unchanged.
class PgException : public std::exception {
 public:
  explicit PgException(ErrorData* data) : data_(data) {}
  ErrorData* data() const { return data_; }
  const char* what() const noexcept override { return data_->message ? data_->message : "error"; }

 private:
  ErrorData* data_;  // palloc'd in the caller's memory context
};

template <typename Fn>
void PgCall(Fn&& fn) {
  MemoryContext caller_cxt = CurrentMemoryContext;
  ErrorData* volatile caught = nullptr;
  PG_TRY();
  {
    fn();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_cxt);
    caught = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  if (caught != nullptr) throw PgException(caught);
}

template <typename Fn>
Datum InvokeCpp(Fn&& fn) {
  ErrorData* pg_error = nullptr;
  bool failed = false;
  char sqlstate[6] = {0};
  char message[2048] = {0};
  char detail[1024] = {0};
  char hint[512] = {0};
  Datum result = (Datum)0;
  try {
    result = fn();
  } catch (const PgException& e) {
    pg_error = e.data();
  } catch (const evstream::Error& e) {
    failed = true;
    strlcpy(sqlstate, e.sqlstate(), sizeof sqlstate);
    strlcpy(message, e.what(), sizeof message);
    strlcpy(detail, e.detail().c_str(), sizeof detail);
    strlcpy(hint, e.hint().c_str(), sizeof hint);
  } catch (const std::bad_alloc&) {
    failed = true;
    strlcpy(sqlstate, "53200", sizeof sqlstate);  // out_of_memory
    strlcpy(message, "evstream: out of memory", sizeof message);
  } catch (const std::exception& e) {
    failed = true;
    strlcpy(sqlstate, evstream::sqlstate::kInternal, sizeof sqlstate);
    strlcpy(message, e.what(), sizeof message);
  } catch (...) {
    failed = true;
    strlcpy(sqlstate, evstream::sqlstate::kInternal, sizeof sqlstate);
    strlcpy(message, "evstream: unknown C++ exception", sizeof message);
  }
  // Every C++ frame of fn has unwound here; a longjmp is now safe.
  if (pg_error != nullptr) ReThrowError(pg_error);
  if (failed) {
    ereport(ERROR, (errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
                                          sqlstate[4])),
                    errmsg_internal("%s", message),
                    detail[0] ? errdetail_internal("%s", detail) : 0,
                    hint[0] ? errhint("%s", hint) : 0));
  }
  return result;
}

}  // namespace evstream::pg
