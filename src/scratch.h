// Per-thread scratch vectors for hot paths (layer forwards, C ABI matmul views): grown once, reused
// by every later call on the same thread, so a warm call allocates nothing. Internal header.
#ifndef LOWBIT_SRC_SCRATCH_H_
#define LOWBIT_SRC_SCRATCH_H_

#include <cstddef>
#include <initializer_list>
#include <vector>

#include "lowbit/dtype.h"

namespace lowbit::internal {

// Buffers larger than this are not kept between calls (a long prefill must not pin hundreds of
// MiB per thread); such calls allocate, which is negligible next to their arithmetic.
constexpr size_t kMaxKeptScratchBytes = size_t{16} << 20;

// Borrows the calling thread's vector for `Tag` (one tag type per use site, so a layer that calls
// another layer never shares a buffer with it) for the lifetime of this object. Sized with
// Resize(); the contents are unspecified until written. A re-entrant borrow on the same thread (a
// host parallel-for that runs another forward on the waiting thread) and oversized requests get
// a private vector instead, so the shared one is never clobbered while in use.
//
// Thread safety: each thread has its own buffer per Tag; an object is used by one thread.
template <class T, class Tag>
class ThreadScratch {
 public:
  ThreadScratch() {
    Slot& slot = GetSlot();
    if (!slot.busy) {
      slot.busy = true;
      slot_ = &slot;
    }
  }
  ~ThreadScratch() {
    if (slot_ != nullptr) slot_->busy = false;
  }
  ThreadScratch(const ThreadScratch&) = delete;
  ThreadScratch& operator=(const ThreadScratch&) = delete;

  // Makes the buffer hold `n` elements (never shrinks the kept capacity) and returns it.
  T* Resize(size_t n) {
    std::vector<T>& v = (slot_ != nullptr && n * sizeof(T) <= kMaxKeptScratchBytes)
                            ? slot_->buffer
                            : private_;
    if (v.size() < n) v.resize(n);
    data_ = v.data();
    return data_;
  }
  T* data() const { return data_; }

 private:
  struct Slot {
    std::vector<T> buffer;
    bool busy = false;
  };
  static Slot& GetSlot() {
    thread_local Slot slot;
    return slot;
  }

  Slot* slot_ = nullptr;  // the borrowed per-thread slot, or nullptr (re-entrant borrow)
  std::vector<T> private_;
  T* data_ = nullptr;
};

// A matmul's x and y views in per-thread storage (ThreadScratch, one Tag per use site): a view
// built on the stack would allocate its Shape vector on every call.
template <class Tag>
class ThreadMatmulViews {
 public:
  ThreadMatmulViews(const void* x, void* y, DType dtype, std::initializer_list<int64_t> x_shape,
                    std::initializer_list<int64_t> y_shape)
      : x_(*x_scratch_.Resize(1)), y_(*y_scratch_.Resize(1)) {
    x_.data = x;
    x_.dtype = dtype;
    x_.shape.assign(x_shape);
    y_.data = y;
    y_.dtype = dtype;
    y_.shape.assign(y_shape);
  }
  // Same, with the shapes of existing views.
  ThreadMatmulViews(const void* x, void* y, DType dtype, const Shape& x_shape,
                    const Shape& y_shape)
      : x_(*x_scratch_.Resize(1)), y_(*y_scratch_.Resize(1)) {
    x_.data = x;
    x_.dtype = dtype;
    x_.shape.assign(x_shape.begin(), x_shape.end());
    y_.data = y;
    y_.dtype = dtype;
    y_.shape.assign(y_shape.begin(), y_shape.end());
  }
  const ConstTensorView& x() const { return x_; }
  const TensorView& y() const { return y_; }

 private:
  ThreadScratch<ConstTensorView, Tag> x_scratch_;
  ThreadScratch<TensorView, Tag> y_scratch_;
  ConstTensorView& x_;
  TensorView& y_;
};

}  // namespace lowbit::internal

#endif  // LOWBIT_SRC_SCRATCH_H_
