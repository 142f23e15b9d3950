// How the daemon's event loops talk to each other: each loop owns one Mailbox; any thread may
// Post a task to it, and the loop runs the tasks in the order they were posted, on its own thread
// (one uv_async_t wake-up for however many tasks arrived meanwhile). What a task captures moves
// from one thread to the other through the mailbox's mutex, which orders it.
//
// The Mailbox object outlives its loop (the App keeps every mailbox until every thread has been
// joined): a Post after Close() refuses the task (returns false) and the caller's thread destroys
// it. Tasks still queued at Close() are destroyed there, on the owner's thread, unrun.
#pragma once
#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

#include "core/uv_handle.hpp"

namespace evstream::core {

class Mailbox {
 public:
  using Task = std::function<void()>;
  Mailbox() = default;
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // On the owning loop's thread, before the loop runs: the wake-up handle, and this thread's
  // Current() mailbox. Returns a libuv error code.
  int Open(uv_loop_t* loop);
  // On the owning thread: nothing more runs; queued tasks are destroyed.
  void Close();
  // From any thread. False once closed (the task is not run).
  bool Post(Task task);
  // The mailbox of the calling thread's loop (nullptr on a thread without one).
  static Mailbox* Current();
  bool IsCurrent() const { return Current() == this; }

 private:
  void Drain();

  UvHandle<uv_async_t> async_;
  std::mutex mu_;
  std::vector<Task> queue_;    // guarded by mu_
  bool open_ = false;          // guarded by mu_
  std::vector<Task> running_;  // the owner's thread only: swapped with queue_ (no allocation)
  bool closing_ = false;       // the owner's thread only
};

// Runs `fn` on `home`'s loop: at once when the caller is on that loop (or home is nullptr, a
// single-loop setup), else posted. False when it was posted to a closed mailbox. (Every loop
// thread has a Current() mailbox, open or closed, from Open() on.)
bool RunOn(Mailbox* home, Mailbox::Task fn);

}  // namespace evstream::core
