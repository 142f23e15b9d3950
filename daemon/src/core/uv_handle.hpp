// RAII for libuv handles: UvHandle<T> allocates the handle on the heap; its destructor calls
// uv_close and the close callback frees it, so the handle outlives its owner until libuv is done.
#pragma once
#include <uv.h>

#include <utility>

namespace evstream::core {

template <typename T>
class UvHandle {
 public:
  UvHandle() : h_(new T{}) {}
  ~UvHandle() { Reset(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)), inited_(o.inited_) {}

  T* get() const { return h_; }
  T* operator->() const { return h_; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  // Call after a successful uv_*_init: only initialised handles are closed.
  void MarkInitialised() { inited_ = true; }
  bool initialised() const { return inited_; }

  // Closes (if initialised) and schedules the free; a fresh handle replaces it.
  void Reset() {
    if (!h_) return;
    if (inited_) {
      if (!uv_is_closing(handle())) uv_close(handle(), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    } else {
      delete h_;
    }
    h_ = nullptr;
    inited_ = false;
  }
  void Renew() {
    Reset();
    h_ = new T{};
  }

 private:
  T* h_;
  bool inited_ = false;
};

}  // namespace evstream::core
