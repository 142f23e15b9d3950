// Timers for many connections at once: a hashed timing wheel (Varghese & Lauck) instead of a
// uv_timer_t per connection. Each entry sits in the slot of its due tick; Add and Cancel are
// O(1); Advance visits only the slots passed since the last call. An entry never fires before
// its due time and at most one tick after it (plus the loop's own lateness).
//
// TimerWheel is pure (no libuv: the unit tests drive it with their own clock); LoopWheel drives
// one with a repeating uv_timer_t that runs only while some entry is armed, so an idle daemon
// with no deadline pending does not wake up for it.
#pragma once
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/uv_handle.hpp"

namespace evstream::core {

class TimerWheel {
 public:
  // 0 is never a valid id: a holder can keep 0 for "not armed".
  using Id = uint64_t;
  using Callback = std::function<void()>;

  // tick_ms > 0, slots > 0; now_ms: the clock at construction (Advance is called with it later).
  TimerWheel(uint64_t tick_ms, size_t slots, uint64_t now_ms);

  // Calls `cb` on the first Advance(now) with now >= due_ms (at once on the next Advance when
  // due_ms is already past). Entries are stored in a slab: no allocation once it has grown.
  Id Add(uint64_t due_ms, Callback cb);
  // false when `id` already fired or was cancelled (harmless: ids are never reused).
  bool Cancel(Id id);
  // Runs what is due at now_ms, earliest first; returns how many ran. A callback may Add and
  // Cancel (an entry cancelled by an earlier callback of the same Advance does not run).
  size_t Advance(uint64_t now_ms);

  size_t size() const { return armed_; }
  bool empty() const { return armed_ == 0; }
  uint64_t tick_ms() const { return tick_ms_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Entry {
    Callback cb;
    uint64_t due_ms = 0;
    uint64_t due_tick = 0;
    uint32_t prev = kNone, next = kNone;  // in its slot's list, or next free
    uint32_t generation = 1;
    bool armed = false;
  };
  static Id MakeId(uint32_t index, uint32_t generation) { return (uint64_t{generation} << 32) | index; }
  void Link(uint32_t i);
  void Unlink(uint32_t i);
  void Free(uint32_t i);
  void Collect(size_t slot, uint64_t up_to_tick);

  uint64_t tick_ms_;
  std::vector<uint32_t> heads_;  // per slot: first entry, or kNone
  std::vector<Entry> entries_;
  uint32_t free_ = kNone;
  size_t armed_ = 0;
  uint64_t current_tick_;  // every slot up to this tick has been visited
  std::vector<std::pair<uint64_t, Id>> due_;  // scratch of Advance (due_ms, id)
};

// A TimerWheel on a libuv loop. The uv timer repeats every tick while an entry is armed and
// stops when the wheel is empty; Close() stops it for good (shutdown).
class LoopWheel {
 public:
  LoopWheel(uv_loop_t* loop, uint64_t tick_ms, size_t slots);
  // Due `delay_ms` from the loop's now.
  TimerWheel::Id Start(uint64_t delay_ms, TimerWheel::Callback cb);
  void Stop(TimerWheel::Id* id);  // cancels *id (if armed) and sets it to 0
  void Close();
  size_t size() const { return wheel_.size(); }

 private:
  void OnTick();
  uv_loop_t* loop_;
  TimerWheel wheel_;
  UvHandle<uv_timer_t> timer_;
  bool running_ = false;
  bool closed_ = false;
};

}  // namespace evstream::core
