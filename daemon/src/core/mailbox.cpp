#include "core/mailbox.hpp"

#include "core/guard.hpp"

namespace evstream::core {
namespace {
thread_local Mailbox* t_current = nullptr;
}  // namespace

Mailbox* Mailbox::Current() { return t_current; }

int Mailbox::Open(uv_loop_t* loop) {
  int rc = uv_async_init(loop, async_.get(), [](uv_async_t* h) {
    Guard("mailbox", [&] { static_cast<Mailbox*>(h->data)->Drain(); });
  });
  if (rc != 0) return rc;
  async_.MarkInitialised();
  async_->data = this;
  t_current = this;
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  return 0;
}

void Mailbox::Close() {
  std::vector<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return;
    open_ = false;
    dropped.swap(queue_);
  }
  closing_ = true;  // a Drain in progress runs nothing more
  // No Post can reach the handle any more (open_ is false under the lock): close it.
  async_.Reset();
  // The thread keeps its identity: its calls to another loop's services still post (and are
  // refused or answered into this closed mailbox, i.e. dropped), never run on the wrong thread.
}

Mailbox::~Mailbox() {
  if (t_current == this) t_current = nullptr;
}

bool Mailbox::Post(Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!open_) return false;
  queue_.push_back(std::move(task));
  if (queue_.size() == 1) uv_async_send(async_.get());  // later ones ride on the same wake-up
  return true;
}

// Each task inside its own boundary: one that throws is logged and the rest still run.
void Mailbox::Drain() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.swap(queue_);
  }
  for (Task& t : running_)
    if (!closing_) Guard("mailbox task", [&] { t(); });
  running_.clear();
}

bool RunOn(Mailbox* home, Mailbox::Task fn) {
  if (!home || home->IsCurrent()) {
    fn();
    return true;
  }
  return home->Post(std::move(fn));
}

}  // namespace evstream::core
