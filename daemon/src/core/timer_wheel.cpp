#include "core/timer_wheel.hpp"

#include <algorithm>

#include "core/guard.hpp"
#include "core/log.hpp"  // LogWarn

namespace evstream::core {

TimerWheel::TimerWheel(uint64_t tick_ms, size_t slots, uint64_t now_ms)
    : tick_ms_(tick_ms == 0 ? 1 : tick_ms), heads_(slots == 0 ? 1 : slots, kNone), current_tick_(now_ms / tick_ms_) {}

TimerWheel::Id TimerWheel::Add(uint64_t due_ms, Callback cb) {
  uint32_t i;
  if (free_ != kNone) {
    i = free_;
    free_ = entries_[i].next;
  } else {
    i = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[i];
  e.cb = std::move(cb);
  e.due_ms = due_ms;
  // The first tick whose start is at or after due_ms; never one already visited.
  e.due_tick = std::max(due_ms / tick_ms_ + (due_ms % tick_ms_ != 0), current_tick_ + 1);
  e.armed = true;
  Link(i);
  armed_++;
  return MakeId(i, e.generation);
}

bool TimerWheel::Cancel(Id id) {
  auto i = static_cast<uint32_t>(id & 0xffffffffu);
  auto generation = static_cast<uint32_t>(id >> 32);
  if (id == 0 || i >= entries_.size() || entries_[i].generation != generation) return false;
  Entry& e = entries_[i];
  if (e.armed) {
    Unlink(i);
    armed_--;
  } else if (!e.cb) {
    return false;  // free
  }
  Free(i);  // armed, or collected by the running Advance: it will not run
  return true;
}

void TimerWheel::Link(uint32_t i) {
  Entry& e = entries_[i];
  uint32_t& head = heads_[e.due_tick % heads_.size()];
  e.prev = kNone;
  e.next = head;
  if (head != kNone) entries_[head].prev = i;
  head = i;
}

void TimerWheel::Unlink(uint32_t i) {
  Entry& e = entries_[i];
  if (e.prev != kNone)
    entries_[e.prev].next = e.next;
  else
    heads_[e.due_tick % heads_.size()] = e.next;
  if (e.next != kNone) entries_[e.next].prev = e.prev;
  e.prev = e.next = kNone;
  e.armed = false;
}

void TimerWheel::Free(uint32_t i) {
  Entry& e = entries_[i];
  e.cb = nullptr;
  e.armed = false;
  e.generation = e.generation == UINT32_MAX ? 1 : e.generation + 1;
  e.next = free_;
  free_ = i;
}

// Moves the entries of `slot` due by `up_to_tick` to due_ (still holding their callbacks).
void TimerWheel::Collect(size_t slot, uint64_t up_to_tick) {
  uint32_t i = heads_[slot];
  while (i != kNone) {
    uint32_t next = entries_[i].next;
    if (entries_[i].due_tick <= up_to_tick) {
      Unlink(i);
      armed_--;
      due_.emplace_back(entries_[i].due_ms, MakeId(i, entries_[i].generation));
    }
    i = next;
  }
}

size_t TimerWheel::Advance(uint64_t now_ms) {
  uint64_t target = now_ms / tick_ms_;
  if (target <= current_tick_ || !due_.empty()) return 0;  // (not re-entered from a callback)
  // Past one revolution every slot is visited once.
  uint64_t steps = std::min<uint64_t>(target - current_tick_, heads_.size());
  for (uint64_t s = 1; s <= steps; s++) Collect((current_tick_ + s) % heads_.size(), target);
  current_tick_ = target;
  std::stable_sort(due_.begin(), due_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t ran = 0;
  for (size_t k = 0; k < due_.size(); k++) {
    Id id = due_[k].second;
    auto i = static_cast<uint32_t>(id & 0xffffffffu);
    if (entries_[i].generation != static_cast<uint32_t>(id >> 32) || !entries_[i].cb) continue;  // cancelled
    Callback cb = std::move(entries_[i].cb);
    Free(i);
    ran++;
    Guard("timer wheel", cb);  // a throwing callback is logged; the others still run
  }
  due_.clear();
  return ran;
}

LoopWheel::LoopWheel(uv_loop_t* loop, uint64_t tick_ms, size_t slots)
    : loop_(loop), wheel_(tick_ms, slots, uv_now(loop)) {
  if (uv_timer_init(loop_, timer_.get()) == 0) timer_.MarkInitialised();
  timer_->data = this;
}

TimerWheel::Id LoopWheel::Start(uint64_t delay_ms, TimerWheel::Callback cb) {
  if (closed_) return 0;
  TimerWheel::Id id = wheel_.Add(uv_now(loop_) + delay_ms, std::move(cb));
  if (!running_ && timer_.initialised()) {
    int rc = uv_timer_start(timer_.get(), [](uv_timer_t* t) {
      static_cast<LoopWheel*>(t->data)->OnTick();
    }, wheel_.tick_ms(), wheel_.tick_ms());
    if (rc == 0)
      running_ = true;
    else
      LogWarn("timer wheel: uv_timer_start failed", {{"error", uv_err_name(rc)}});
  }
  return id;
}

void LoopWheel::Stop(TimerWheel::Id* id) {
  if (*id != 0) wheel_.Cancel(*id);
  *id = 0;
}

void LoopWheel::OnTick() {
  wheel_.Advance(uv_now(loop_));
  if (wheel_.empty() && running_) {
    uv_timer_stop(timer_.get());
    running_ = false;
  }
}

void LoopWheel::Close() {
  closed_ = true;
  if (running_) uv_timer_stop(timer_.get());
  running_ = false;
}

}  // namespace evstream::core
