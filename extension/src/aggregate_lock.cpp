// The per-aggregate append lock (see aggregate_lock.hpp).
#include "aggregate_lock.hpp"

#include <cstring>

#include "pg/guard.hpp"

extern "C" {
#include "common/hashfn.h"  // hash_bytes_extended
#include "miscadmin.h"      // MyDatabaseId
#include "storage/lock.h"   // LockAcquire, SET_LOCKTAG_ADVISORY
}

namespace evstream::aggregate_lock {

void Lock(const char* aggregate_type, const char* aggregate_id) {
  // The hash of type, a separator no identifier may hold (0x1f), and id, hashed in two steps
  // so no buffer is needed: h(id, seed = h(type + 0x1f)).
  size_t type_len = strlen(aggregate_type);
  size_t id_len = strlen(aggregate_id);
  pg::PgCall([&] {
    uint64 seed = hash_bytes_extended(reinterpret_cast<const unsigned char*>(aggregate_type),
                                      static_cast<int>(type_len), kKeySpace);
    seed = hash_bytes_uint32_extended(0x1f, seed);
    uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(aggregate_id),
                                   static_cast<int>(id_len), seed);
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(h >> 32), static_cast<uint32>(h),
                         kKeySpace);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
}

}  // namespace evstream::aggregate_lock
